# GPUNet-0 classifier on the built-in demo classification set (8 shape classes, 64x64;
# see docs/demo_data.md). Sized for a CPU.
_base_ = ['../_base_/models/gpunet_cls.py', '../_base_/default_runtime_cls.py']

data_root = 'data/demo_cls'
num_classes = 8
model = dict(
    backbone=dict(tier='GPUNet-0', drop_path_rate=0.0),
    head=dict(num_classes=num_classes,
              loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
data_preprocessor = dict(num_classes=num_classes, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64, num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10)]
default_hooks = dict(logger=dict(interval=10))
randomness = dict(seed=0)
