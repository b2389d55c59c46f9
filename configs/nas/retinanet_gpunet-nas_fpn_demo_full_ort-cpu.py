# The demo search without rungs, for comparison with `make demo`'s promotions at equal
# compute (benchmarks/benchmark_demo_fidelity.py): every candidate trains the whole 8-epoch
# proxy schedule from scratch, as the demo did before multi-fidelity: 6 candidates (GPUNet-0
# included) x 8 epochs = the 48 epochs `make demo` spends on its rungs. The final retrain of
# the top 2 is the demo's own, so both modes end with the same retrain.
_base_ = ['./retinanet_gpunet-nas_fpn_demo_ort-cpu.py']

nas = dict(fidelity=None, compute_budget=None, num_trials=6)
