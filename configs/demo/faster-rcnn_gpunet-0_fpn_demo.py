# Faster R-CNN + GPUNet-0 on the built-in demo set (see docs/demo_data.md): the shipped
# model (faster_rcnn_gpunet_fpn.py) at CPU-demo widths, trained from scratch.
_base_ = ['../_base_/models/faster_rcnn_gpunet_fpn.py', '../_base_/datasets/demo_det.py']

model = dict(
    backbone=dict(tier='GPUNet-0', frozen_stages=0, norm_eval=False),
    neck=dict(in_channels=[32, 64, 256, 704], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=4)),
    # a short CPU training leaves the R-CNN classifier unsure of itself: a low threshold
    # keeps its boxes visible (mmdet's default is 0.05)
    test_cfg=dict(rpn=dict(max_per_img=300), rcnn=dict(score_thr=0.001, max_per_img=50)))
