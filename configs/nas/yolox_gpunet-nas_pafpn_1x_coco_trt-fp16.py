# YOLOX-s backbone search on COCO for a GPU target: TensorRT FP16, batch 1, the whole
# detector (EfficientNMS) timed on a GPU kept for timing by a Ray actor with the custom
# resource `latency_gpu`; the shared search settings
# (_base_/search_coco_trt-fp16.py) with YOLOX-s's neck and head
# (configs/_base_/models/yolox_gpunet_pafpn.py). See docs/distributed_search.md.
_base_ = [
    '../_base_/models/yolox_gpunet_pafpn.py', '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime_det.py',
    './_base_/search_coco_trt-fp16.py',
]

# proxy schedule: 3 epochs per candidate (AdamW, as RTMDet/YOLOX train), evaluated on val2017
train_cfg = {{_base_.proxy_schedule.train_cfg}}
param_scheduler = {{_base_.proxy_schedule.param_scheduler}}
model = {{_base_.proxy_schedule.model}}
default_hooks = {{_base_.proxy_schedule.default_hooks}}
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=0.004, weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0,
                                        bypass_duplicate=True))
