# YOLOX-s with a GPUNet backbone: mmdet's yolox_s_8xb8-300e_coco.py model with GPUNet
# levels 2/3/4 (strides 8/16/32) in place of CSPDarknet; the YOLOXPAFPN neck's
# in_channels follow the backbone's level channels (the search sets them per candidate).
model = dict(
    type='YOLOX',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='GPUNet', tier=0, out_indices=(2, 3, 4), frozen_stages=1,
                  norm_eval=True, init_cfg=None),
    neck=dict(type='YOLOXPAFPN', in_channels=[64, 256, 704], out_channels=128,
              num_csp_blocks=1, use_depthwise=False,
              upsample_cfg=dict(scale_factor=2, mode='nearest'),
              norm_cfg=dict(type='BN', momentum=0.03, eps=0.001), act_cfg=dict(type='Swish')),
    bbox_head=dict(
        type='YOLOXHead', num_classes=80, in_channels=128, feat_channels=128,
        stacked_convs=2, strides=(8, 16, 32), use_depthwise=False,
        norm_cfg=dict(type='BN', momentum=0.03, eps=0.001), act_cfg=dict(type='Swish'),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum',
                      loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', mode='square', eps=1e-16, reduction='sum',
                       loss_weight=5.0),
        loss_obj=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum',
                      loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='SimOTAAssigner', center_radius=2.5)),
    test_cfg=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.65), max_per_img=100))
