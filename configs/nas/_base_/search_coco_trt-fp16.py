# What every COCO detection search for a GPU target shares: TensorRT FP16, batch 1, the
# whole detector (EfficientNMS) timed on a GPU kept for timing by a Ray actor with the
# custom resource `latency_gpu` (start that node with
# `ray start ... --resources='{"latency_gpu": 1}'`); each candidate trains a short proxy
# schedule on one GPU, evaluated on val2017. A search config lists this file after its
# detector config; see docs/distributed_search.md.
_base_ = ['../lamcts_gpunet-det_space.py']

search_space = dict(resolutions=[320, 384, 448, 512])

nas = dict(
    metric='coco/bbox_mAP',
    budgets=[1.0, 1.5, 2.0],  # ms end to end on the target GPU
    num_trials=200,
    num_workers=32,
    resources=dict(num_cpus=8, num_gpus=1),
    max_attempts=3,
    trial_timeout_s=6 * 3600,
    references=['GPUNet-0', 'GPUNet-1', 'GPUNet-2'],
    calibration_samples=8,
    propose_ahead=8,
    seed=0,
)

latency_target = dict(
    backend='tensorrt', device='cuda', precision='fp16', batch=1, iters=200, warmup=50,
    exclusive=True, resources=dict(num_gpus=1, resources={'latency_gpu': 1}),
)
predictor = dict(path=None)

# The proxy schedule: 3 epochs per candidate. mmengine refuses a key set by two bases, and
# the detector config sets these, so a search config applies them by name:
# train_cfg = {{_base_.proxy_schedule.train_cfg}}, ...
max_epochs = 3
proxy_schedule = dict(
    train_cfg=dict(max_epochs=max_epochs, val_interval=max_epochs),
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='CosineAnnealingLR', begin=0, end=max_epochs, by_epoch=True, eta_min=1e-5),
    ],
    model=dict(backbone=dict(frozen_stages=-1, norm_eval=False)),
    default_hooks=dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1)),
)
