# The demo search with YOLOX-s (YOLOXPAFPN neck, YOLOXHead): backbones on the built-in demo
# data, on 2 CPU cores, under budgets relative to GPUNet-0's end-to-end ONNX Runtime latency
# in this detector (decoding and NMS included). The neck's in_channels follow each
# candidate's level channels. Same settings as retinanet_gpunet-nas_fpn_demo_ort-cpu.py.
_base_ = ['../demo/yolox-s_gpunet-0_pafpn_demo.py', './lamcts_gpunet-det_space.py']

search_space = dict(resolutions=[128])
search_optimizer = dict(n_init=4)

nas = dict(
    metric='coco/bbox_mAP',
    budgets=['1.1*GPUNet-0'],
    num_trials=6,  # trained candidates, GPUNet-0 included
    num_workers=2,
    resources=dict(num_cpus=1, num_gpus=0),
    threads=1,
    max_attempts=2,
    trial_timeout_s=900,
    references=['GPUNet-0'],
    calibration_samples=2,
    seed=0,
)

latency_target = dict(
    backend='onnxruntime', device='cpu', precision='fp32', batch=1, threads=1,
    iters=30, warmup=5, clock='cpu', exclusive=False,
)
predictor = dict(path=None)

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', begin=0, end=max_epochs, by_epoch=True, eta_min=1e-5),
]
train_dataloader = dict(num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
