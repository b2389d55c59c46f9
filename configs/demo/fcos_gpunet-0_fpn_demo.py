# FCOS + GPUNet-0 on the built-in demo set (see docs/demo_data.md): the shipped model
# (fcos_gpunet_fpn.py) at CPU-demo widths, trained from scratch with the demo schedule.
_base_ = ['../_base_/models/fcos_gpunet_fpn.py', '../_base_/datasets/demo_det.py']

model = dict(
    backbone=dict(tier='GPUNet-0', frozen_stages=0, norm_eval=False),
    neck=dict(in_channels=[64, 256, 704], out_channels=96),
    bbox_head=dict(num_classes=4, in_channels=96, feat_channels=96, stacked_convs=2,
                   norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)),
    test_cfg=dict(max_per_img=50))
