_base_ = [
    '../_base_/models/retinanet_gpunet_fpn.py', '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime_det.py'
]
# GPUNet-2: levels 2/3/4 (strides 8/16/32) have [112, 160, 832] channels.
# For ImageNet-pretrained weights, convert a release checkpoint with
# tools/model_converters/gpunet_release_to_mm.py and set `pretrained` below to its path
# (in this file: the lines below are evaluated here, so --cfg-options pretrained=... or a
# child config's `pretrained` would not reach them; see docs/model_zoo.md).
# Without weights the backbone trains from scratch: nothing frozen, BN trains. With them
# the stem stays frozen and BN keeps ImageNet statistics (mmdet's usual recipe).
pretrained = None
model = dict(
    backbone=dict(
        tier='GPUNet-2',
        frozen_stages=1 if pretrained else 0,
        norm_eval=bool(pretrained),
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')
        if pretrained else None),
    neck=dict(in_channels=[112, 160, 832]))
optim_wrapper = dict(optimizer=dict(lr=0.01))
