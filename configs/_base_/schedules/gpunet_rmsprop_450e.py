# The release's ImageNet recipe (timm): RMSpropTF-like (alpha 0.9, eps 1e-3, momentum 0.9),
# lr 0.06 for 8x192 images, decay x0.97 every 2.4 epochs (here the smooth exponential
# equivalent per epoch), 3 warm-up epochs, weight decay 1e-5, model EMA 0.9999, 450 epochs.
optim_wrapper = dict(
    optimizer=dict(type='RMSprop', lr=0.06, alpha=0.9, eps=1e-3, momentum=0.9,
                   weight_decay=1e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    dict(type='ExponentialLR', gamma=0.97 ** (1 / 2.4), by_epoch=True, begin=3, end=450),
]
train_cfg = dict(by_epoch=True, max_epochs=450, val_interval=5)
val_cfg = dict()
test_cfg = dict()
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=1536)
