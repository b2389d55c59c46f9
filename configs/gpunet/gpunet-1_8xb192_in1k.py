_base_ = [
    '../_base_/models/gpunet_cls.py', '../_base_/datasets/imagenet_bs192_gpunet_288.py',
    '../_base_/schedules/gpunet_rmsprop_450e.py', '../_base_/default_runtime_cls.py'
]
# GPUNet-1 on ImageNet-1k at its native resolution 288 (release: top-1 80.5%).
model = dict(backbone=dict(tier='GPUNet-1'))
