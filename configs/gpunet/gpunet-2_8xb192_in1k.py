_base_ = [
    '../_base_/models/gpunet_cls.py', '../_base_/datasets/imagenet_bs192_gpunet_384.py',
    '../_base_/schedules/gpunet_rmsprop_450e.py', '../_base_/default_runtime_cls.py'
]
# GPUNet-2 on ImageNet-1k at its native resolution 384 (release: top-1 82.2%).
model = dict(backbone=dict(tier='GPUNet-2'))
