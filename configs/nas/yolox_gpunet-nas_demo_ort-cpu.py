# The demo search with YOLOX-s (YOLOXPAFPN neck, YOLOXHead): backbones on the built-in demo
# data, on 2 CPU cores, under budgets relative to GPUNet-0's end-to-end ONNX Runtime latency
# in this detector (decoding and NMS included). The neck's in_channels follow each
# candidate's level channels. The shared demo search settings are in _base_/search_demo_ort-cpu.py.
_base_ = ['../demo/yolox-s_gpunet-0_pafpn_demo.py', './_base_/search_demo_ort-cpu.py']

nas = dict(num_trials=6)  # trained candidates, GPUNet-0 included

# the candidates' proxy schedule (8 epochs, from scratch), from the shared base
max_epochs = {{_base_.proxy_schedule.max_epochs}}
train_cfg = {{_base_.proxy_schedule.train_cfg}}
param_scheduler = {{_base_.proxy_schedule.param_scheduler}}
train_dataloader = {{_base_.proxy_schedule.train_dataloader}}
val_dataloader = {{_base_.proxy_schedule.val_dataloader}}
test_dataloader = val_dataloader
default_hooks = {{_base_.proxy_schedule.default_hooks}}
