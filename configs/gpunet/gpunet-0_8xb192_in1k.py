_base_ = [
    '../_base_/models/gpunet_cls.py', '../_base_/datasets/imagenet_bs192_gpunet_320.py',
    '../_base_/schedules/gpunet_rmsprop_450e.py', '../_base_/default_runtime_cls.py'
]
# GPUNet-0 on ImageNet-1k at its native resolution 320 (release: top-1 78.9%).
model = dict(backbone=dict(tier='GPUNet-0'))
