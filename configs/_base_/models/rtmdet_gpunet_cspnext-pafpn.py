# RTMDet-tiny with a GPUNet backbone: mmdet's rtmdet_tiny_8xb32-300e_coco.py model with
# GPUNet levels 2/3/4 (strides 8/16/32) in place of CSPNeXt; the CSPNeXtPAFPN neck's
# in_channels follow the backbone's level channels (the search sets them per candidate).
# RTMDet-s: neck out_channels and head in/feat_channels 128 (configs/gpunet_det/).
model = dict(
    type='RTMDet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='GPUNet', tier=0, out_indices=(2, 3, 4), frozen_stages=1,
                  norm_eval=True, init_cfg=None),
    neck=dict(type='CSPNeXtPAFPN', in_channels=[64, 256, 704], out_channels=96,
              num_csp_blocks=1, expand_ratio=0.5, norm_cfg=dict(type='BN'),
              act_cfg=dict(type='SiLU', inplace=True)),
    bbox_head=dict(
        type='RTMDetSepBNHead', num_classes=80, in_channels=96, stacked_convs=2,
        feat_channels=96, anchor_generator=dict(type='MlvlPointGenerator', offset=0,
                                                strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False, exp_on_reg=False, share_conv=True, pred_kernel_size=1,
        norm_cfg=dict(type='BN'), act_cfg=dict(type='SiLU', inplace=True)),
    train_cfg=dict(assigner=dict(type='DynamicSoftLabelAssigner', topk=13),
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=30000, min_bbox_size=0, score_thr=0.001,
                  nms=dict(type='nms', iou_threshold=0.65), max_per_img=300))
