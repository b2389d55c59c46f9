# `make demo`'s search with weight inheritance, for the comparison at equal compute
# (benchmarks/benchmark_demo_fidelity.py, mode `inherit`): the same rungs, compute budget
# and final retrain, but every new candidate starts from the weights of the closest
# candidate that finished the top rung (8 epochs; nas.inherit, gpunet_mm.search.inherit),
# once one has. The final retrain trains from scratch, so it scores the architectures the
# inherited rungs chose, not the inherited weights. Off in `make demo`: see
# docs/search_fidelity.md (weight inheritance) for what it measured.
_base_ = ['./retinanet_gpunet-nas_fpn_demo_ort-cpu.py']

nas = dict(inherit=dict(parent_rung=-1, min_fraction=0.0))
