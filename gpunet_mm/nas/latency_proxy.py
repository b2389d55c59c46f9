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
from typing import Any, Tuple

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


@dataclass(frozen=True)
class ConvOp:
    """One convolution of a placed layer: its weight count (``k*k*c_in*c_out``, depthwise
    ``k*k*c``), its input and output pixels and channels. The one decomposition of a layer
    that the cost models read: multiply-adds are ``weights * out_pixels``, parameters
    ``weights``, the proxy's bytes moved ``in_pixels*c_in + out_pixels*c_out + weights``."""

    weights: int
    in_pixels: int
    out_pixels: int
    c_in: int
    c_out: int


def conv_ops(layer: Any) -> Tuple[ConvOp, ...]:
    """The convolutions of a :meth:`~GPUNetArch.placed_layers` layer, in execution order:
    ``conv`` one kxk; ``fused`` a kxk expansion and a 1x1 projection; ``irb`` a 1x1
    expansion (at the input size), a kxk depthwise and a 1x1 projection (SE not included)."""
    (hi, wi), (ho, wo) = layer.in_hw, layer.out_hw
    hw_in, hw_out = hi * wi, ho * wo
    k2, cin, cout, mid = layer.kernel**2, layer.in_channels, layer.out_channels, layer.mid_channels
    if layer.type == 'conv':
        return (ConvOp(k2 * cin * cout, hw_in, hw_out, cin, cout),)
    if layer.type == 'fused':
        return (
            ConvOp(k2 * cin * mid, hw_in, hw_out, cin, mid),
            ConvOp(mid * cout, hw_out, hw_out, mid, cout),
        )
    return (
        ConvOp(cin * mid, hw_in, hw_in, cin, mid),
        ConvOp(k2 * mid, hw_in, hw_out, mid, mid),
        ConvOp(mid * cout, hw_out, hw_out, mid, cout),
    )


def tail_ops(arch: GPUNetArch) -> Tuple[ConvOp, ...]:
    """The 1x1 tail convolution after the last layer (none for an arch without a tail)."""
    last = arch.placed_layers()[-1]
    hw = last.out_hw[0] * last.out_hw[1]
    return tuple(
        ConvOp(arch.out_channels * c, hw, hw, arch.out_channels, c) for c in arch.tail_channels[:1]
    )


def _op_time(gpu: GPUModel, op: ConvOp) -> float:
    """Roofline time of one convolution: FLOPs (2 per multiply-add) against bytes moved."""
    flops = 2 * op.out_pixels * op.weights
    n_bytes = gpu.bytes_per_value * (op.in_pixels * op.c_in + op.out_pixels * op.c_out + op.weights)
    return max(flops / gpu.flops_per_s, n_bytes / gpu.bytes_per_s) + gpu.kernel_s


def latency_proxy(arch: GPUNetArch, gpu: GPUModel = A100_PROXY) -> float:
    """Predicted batch-1 latency in ms from the arch spec alone (FLOPs and bytes moved)."""
    bpv = gpu.bytes_per_value
    total = 0.0
    for layer in arch.placed_layers():
        t = 0.0
        for op in conv_ops(layer):
            t += _op_time(gpu, op)
        if layer.se_channels:
            hw_out = layer.out_hw[0] * layer.out_hw[1]
            t += (
                gpu.se_kernels * gpu.kernel_s
                + bpv * 2 * hw_out * layer.mid_channels / gpu.bytes_per_s
            )
        if layer.act == 'swish':
            t *= gpu.swish_factor
        total += t
    for op in tail_ops(arch):  # conv1x1 tail, pooling and classifier
        total += _op_time(gpu, op)
        total += 2 * gpu.kernel_s + bpv * op.c_out * 1000 / gpu.bytes_per_s
    return total * 1e3


def arch_flops(arch: GPUNetArch) -> float:
    """Multiply-adds (G) of the blocks and the tail (a capacity measure for the surrogate)."""
    macs = 0.0
    for layer in arch.placed_layers():
        for op in conv_ops(layer):
            macs += op.out_pixels * op.weights
    for op in tail_ops(arch):
        macs += op.out_pixels * op.weights
    return macs / 1e9


__all__ = [
    'A100_PROXY',
    'ConvOp',
    'GPUModel',
    'T4_PROXY',
    'arch_flops',
    'conv_ops',
    'latency_proxy',
    'tail_ops',
]
