_base_ = [
    '../_base_/models/gpunet_cls.py', '../_base_/datasets/imagenet_bs192_gpunet_528.py',
    '../_base_/schedules/gpunet_rmsprop_450e.py', '../_base_/default_runtime_cls.py'
]
# GPUNet-D2 on ImageNet-1k at its native resolution 528 (release: top-1 83.6%).
model = dict(backbone=dict(tier='GPUNet-D2'))
train_dataloader = dict(batch_size=128)
