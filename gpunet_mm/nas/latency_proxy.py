"""The analytic latency proxy of GPUNet architectures: what the search prunes with.

A roofline model of a GPU (:class:`GPUModel`: an effective FLOP rate, a bandwidth term and
a fixed cost per kernel) over the arch's placed layers (:func:`latency_proxy`), and the
arch's multiply-adds (:func:`arch_flops`). The search's pruning predictor starts from it
(``search/api.py``, calibrated by measurements), the trainer records ``arch_flops``, and the
surrogate objectives of :mod:`gpunet_mm.nas.objectives` reuse it for their constraints.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpunet_mm.models.arch_spec import GPUNetArch


@dataclass(frozen=True)
class GPUModel:
    """Roofline constants of the proxy (A100-like, FP16, batch 1, TensorRT-fused convs).

    Batch-1 inference of small CNNs is dominated by memory traffic and per-kernel
    launch/tail effects, not by peak FLOPs; hence an effective (low) FLOP rate, a
    bandwidth term and a fixed cost per kernel. Calibrated so the published GPUNet-0/1/2
    land near their A100 TensorRT latencies (0.46 / 0.59 / 1.25 ms).
    """

    flops_per_s: float = 40e12
    bytes_per_s: float = 1.2e12
    kernel_s: float = 7e-6
    bytes_per_value: int = 2
    se_kernels: int = 3
    swish_factor: float = 1.06


A100_PROXY = GPUModel()
#: an edge GPU (T4-like): lower FLOP rate and bandwidth, costlier kernel launches
T4_PROXY = GPUModel(flops_per_s=12e12, bytes_per_s=0.3e12, kernel_s=12e-6)


def _op_time(gpu: GPUModel, flops: float, n_bytes: float) -> float:
    return max(flops / gpu.flops_per_s, n_bytes / gpu.bytes_per_s) + gpu.kernel_s


def latency_proxy(arch: GPUNetArch, gpu: GPUModel = A100_PROXY) -> float:
    """Predicted batch-1 latency in ms from the arch spec alone (FLOPs and bytes moved)."""
    bpv = gpu.bytes_per_value
    total = 0.0
    layers = arch.placed_layers()
    for layer in layers:
        (hi, wi), (ho, wo) = layer.in_hw, layer.out_hw
        hw_in, hw_out = hi * wi, ho * wo
        k2, cin, cout, mid = (
            layer.kernel**2,
            layer.in_channels,
            layer.out_channels,
            layer.mid_channels,
        )
        t = 0.0
        if layer.type == 'conv':
            t += _op_time(
                gpu,
                2 * hw_out * k2 * cin * cout,
                bpv * (hw_in * cin + hw_out * cout + k2 * cin * cout),
            )
        elif layer.type == 'fused':
            t += _op_time(
                gpu,
                2 * hw_out * k2 * cin * mid,
                bpv * (hw_in * cin + hw_out * mid + k2 * cin * mid),
            )
            t += _op_time(gpu, 2 * hw_out * mid * cout, bpv * (hw_out * (mid + cout) + mid * cout))
        else:  # irb: expand 1x1, depthwise kxk, project 1x1
            t += _op_time(gpu, 2 * hw_in * cin * mid, bpv * (hw_in * (cin + mid) + cin * mid))
            t += _op_time(gpu, 2 * hw_out * k2 * mid, bpv * (hw_in * mid + hw_out * mid + k2 * mid))
            t += _op_time(gpu, 2 * hw_out * mid * cout, bpv * (hw_out * (mid + cout) + mid * cout))
        if layer.se_channels:
            t += gpu.se_kernels * gpu.kernel_s + bpv * 2 * hw_out * mid / gpu.bytes_per_s
        if layer.act == 'swish':
            t *= gpu.swish_factor
        total += t
    for c in arch.tail_channels[:1]:  # conv1x1 tail, pooling and classifier
        cin = arch.out_channels
        hw = layers[-1].out_hw[0] * layers[-1].out_hw[1]
        total += _op_time(gpu, 2 * hw * cin * c, bpv * (hw * (cin + c) + cin * c))
        total += 2 * gpu.kernel_s + bpv * c * 1000 / gpu.bytes_per_s
    return total * 1e3


def arch_flops(arch: GPUNetArch) -> float:
    """Multiply-adds (G) of the blocks and the tail (a capacity measure for the surrogate)."""
    macs = 0.0
    layers = arch.placed_layers()
    for layer in layers:
        hw_in = layer.in_hw[0] * layer.in_hw[1]
        hw_out = layer.out_hw[0] * layer.out_hw[1]
        k2, cin, mid, cout = (
            layer.kernel**2,
            layer.in_channels,
            layer.mid_channels,
            layer.out_channels,
        )
        if layer.type == 'conv':
            macs += hw_out * k2 * cin * cout
        elif layer.type == 'fused':
            macs += hw_out * (k2 * cin * mid + mid * cout)
        else:
            macs += hw_in * cin * mid
            macs += hw_out * (k2 * mid + mid * cout)
    for c in arch.tail_channels[:1]:
        macs += layers[-1].out_hw[0] * layers[-1].out_hw[1] * arch.out_channels * c
    return macs / 1e9


__all__ = ['A100_PROXY', 'GPUModel', 'T4_PROXY', 'arch_flops', 'latency_proxy']
