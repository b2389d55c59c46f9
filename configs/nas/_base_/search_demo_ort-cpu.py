# What every demo detection search shares (`make demo`): candidates trained on the built-in
# demo data on 2 CPU cores, timed end to end (decoding and NMS included) by ONNX Runtime on
# one CPU thread, under budgets relative to GPUNet-0 measured in the same detector on this
# machine. GPUNet-0 is trained as a trial of the same run (nas.references), so the winner
# is compared with it in the same detector and schedule. A search config lists this file
# after its detector config and overrides what differs (e.g. nas.num_trials).
_base_ = ['../lamcts_gpunet-det_space.py']

# every stage of the paper's table at one input size: the 256 px demo images are resized
# to 128 px for training and timing (4x cheaper; the shapes stay easy to see)
search_space = dict(resolutions=[128])
search_optimizer = dict(n_init=4)

nas = dict(
    metric='coco/bbox_mAP',
    # ms, or relative to a reference tier measured on the target ('1.1*GPUNet-0')
    budgets=['1.1*GPUNet-0'],
    num_workers=2,  # concurrent trainings
    resources=dict(num_cpus=1, num_gpus=0),  # Ray resources of one training
    threads=1,  # torch threads per training: 2 one-thread trainings beat 1 two-thread one
    max_attempts=2,
    trial_timeout_s=900,
    references=['GPUNet-0'],
    calibration_samples=2,  # random archs measured to anchor the predictor (+ fastest, refs)
    seed=0,
)

latency_target = dict(
    backend='onnxruntime', device='cpu', precision='fp32', batch=1, threads=1,
    iters=30, warmup=5,
    clock='cpu',  # one ORT thread: CPU time per run is wall time without the neighbours' load
    exclusive=False,  # shares the CPU with the trainings: timed only while none runs
    rounds=3,  # 3 rounds of 30 runs, the median round kept: a burst of load is outvoted
    # GPUNet-0 re-timed in every timing window and each window's latencies scaled by its
    # drift, so they stay in the units of its first timing (the budget's): the load of a
    # shared machine moves every detector of a window alike (docs/search_fidelity.md)
    anchor='GPUNet-0',
)

# pruning model: the analytic proxy scaled to this target by measured calibration points
# and refitted from every measurement (a fitted LatencyPredictor JSON for the target can be
# given as path=...; the RetinaNet demo search does)
predictor = dict(path=None)

# The candidates' proxy schedule: short, from scratch (overrides the base detector config).
# mmengine refuses a key set by two bases, and the detector config sets these (the demo
# data's config sets max_epochs too), so a search config applies them by name:
# train_cfg = {{_base_.proxy_schedule.train_cfg}}, ...
# GPUNet-0 reached bbox mAP 0.10 after 6 epochs at 128 px on a busy machine.
__epochs = 8  # '__': a name of this file only, not a config key
proxy_schedule = dict(
    max_epochs=__epochs,
    train_cfg=dict(max_epochs=__epochs, val_interval=__epochs),
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
        dict(type='CosineAnnealingLR', begin=0, end=__epochs, by_epoch=True, eta_min=1e-5),
    ],
    train_dataloader=dict(num_workers=0, persistent_workers=False),
    val_dataloader=dict(num_workers=0, persistent_workers=False),
    default_hooks=dict(checkpoint=dict(interval=__epochs, max_keep_ckpts=1, save_best=None)),
)
