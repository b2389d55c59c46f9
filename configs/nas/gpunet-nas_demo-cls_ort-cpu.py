# The same machinery on a classifier: search GPUNet classification backbones on the demo
# classification data (8 shape classes, 64x64), metric accuracy/top1, ONNX Runtime CPU.
_base_ = ['../demo/gpunet-0_demo_cls.py', './lamcts_gpunet-det_space.py']

search_space = dict(type='GPUNetSpace', variant='classification', resolutions=[64])
search_optimizer = dict(n_init=4)
nas = dict(
    metric='accuracy/top1',
    budgets=['1.1*GPUNet-0'],
    num_trials=4,
    num_workers=2,
    resources=dict(num_cpus=1, num_gpus=0),
    threads=1,
    references=['GPUNet-0'],
    calibration_samples=1,
)
latency_target = dict(backend='onnxruntime', device='cpu', precision='fp32', batch=1,
                       threads=1, iters=30, warmup=5, exclusive=False)
predictor = dict(path=None)
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
