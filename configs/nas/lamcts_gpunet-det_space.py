# LA-MCTS-guided BO over the detection space; read with mmengine's Config and built with
# gpunet_mm.nas.build_space / build_optimizer (see docs/nas.md).
_base_ = ['./_base_/gpunet_det_space.py']

search_optimizer = dict(
    type='LaMCTSBO',
    seed=0,
    leaf_size=10,  # a node with more samples is split (LA-MCTS uses 10-20)
    cp=0.1,  # UCB exploration on standardised values
    batch_strategy='kriging_believer',  # how pending trials are fantasised in ask(n)
    calibration_quantile=0.8,  # measured/predicted latency ratio that shrinks the budget
)
