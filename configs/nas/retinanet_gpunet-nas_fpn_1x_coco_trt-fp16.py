# RetinaNet backbone search on COCO for a GPU target: TensorRT FP16, batch 1, the whole
# detector (EfficientNMS) timed on a GPU kept for timing by a Ray actor with the custom
# resource `latency_gpu` (start that node with `ray start ... --resources='{"latency_gpu": 1}'`).
# Each candidate trains a short proxy schedule on one GPU; the shared settings are in
# _base_/search_coco_trt-fp16.py. See docs/distributed_search.md.
_base_ = ['../gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py', './_base_/search_coco_trt-fp16.py']

# proxy schedule: 3 epochs per candidate, evaluated on val2017
train_cfg = {{_base_.proxy_schedule.train_cfg}}
param_scheduler = {{_base_.proxy_schedule.param_scheduler}}
model = {{_base_.proxy_schedule.model}}
default_hooks = {{_base_.proxy_schedule.default_hooks}}
