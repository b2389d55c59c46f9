_base_ = [
    '../_base_/models/gpunet_cls.py', '../_base_/datasets/imagenet_bs192_gpunet_224.py',
    '../_base_/schedules/gpunet_rmsprop_450e.py', '../_base_/default_runtime_cls.py'
]
# GPUNet-P0 on ImageNet-1k at its native resolution 224 (release: top-1 80.3%).
model = dict(backbone=dict(tier='GPUNet-P0'))
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(optimizer=dict(lr=0.08))  # 8 x 256 images
