# RTMDet-tiny + GPUNet-0 on the built-in demo set (see docs/demo_data.md): the shipped model
# (rtmdet_gpunet_cspnext-pafpn.py) at CPU-demo widths, trained from scratch with the demo schedule.
_base_ = ['../_base_/models/rtmdet_gpunet_cspnext-pafpn.py', '../_base_/datasets/demo_det.py']

model = dict(
    backbone=dict(tier='GPUNet-0', frozen_stages=0, norm_eval=False),
    neck=dict(in_channels=[64, 256, 704]),
    bbox_head=dict(num_classes=4),
    test_cfg=dict(max_per_img=50))
# RTMDetSepBNHead shares its convs across levels: the parameter groups skip the repeats
# (as mmdet's RTMDet configs do)
optim_wrapper = dict(paramwise_cfg=dict(bypass_duplicate=True))
