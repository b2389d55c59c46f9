# RetinaNet + GPUNet-0 on the built-in demo set (rendered shapes, 256x256; see
# docs/demo_data.md). Sized for a CPU: lighter FPN/head than COCO, a short schedule.
_base_ = ['../_base_/models/retinanet_gpunet_fpn.py', '../_base_/datasets/demo_det.py']

classes = ('circle', 'square', 'triangle', 'star')  # data and schedule: demo_det.py
model = dict(
    backbone=dict(tier='GPUNet-0', frozen_stages=0, norm_eval=False),
    neck=dict(in_channels=[64, 256, 704], out_channels=96),
    # GroupNorm in the head: the whole detector trains from scratch here, and normalised
    # head convs converge much faster than RetinaNet's plain ones
    bbox_head=dict(num_classes=len(classes), in_channels=96, feat_channels=96,
                   stacked_convs=2, norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
                   anchor_generator=dict(octave_base_scale=3)),
    test_cfg=dict(score_thr=0.05, max_per_img=50))
