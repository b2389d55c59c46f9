# ImageNet-1k with the GPUNet release's (timm) augmentation at 224 px: RandomResizedCrop,
# flip, RandAugment (rand-m9-mstd0.5), RandomErasing 0.2; evaluation resizes the short edge
# and centre-crops (pillow bicubic). The other resolutions' files only change the sizes.
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(num_classes=1000, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
bgr_mean = data_preprocessor['mean'][::-1]
rand_augment = dict(
    type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
    magnitude_level=9, magnitude_std=0.5,
    hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic'))
random_erasing = dict(
    type='RandomErasing', erase_prob=0.2, mode='rand', min_area_ratio=0.02,
    max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[58.395, 57.12, 57.375][::-1])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    rand_augment,
    random_erasing,
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=192, num_workers=8,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64, num_workers=8,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
