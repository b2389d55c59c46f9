"""Objectives for benchmarking the optimisers (test functions and surrogates, not production).

* Classic minimisation test functions (vectorised numpy): Ackley, Levy, Rastrigin, with
  the domains used by LA-MCTS / TuRBO papers.
* ``gpunet-surrogate``: a cheap stand-in for "train this GPUNet and report top-1" over the
  real discrete space, with a latency constraint from an analytical proxy. It exists to
  exercise the discrete, constrained path of the optimisers, not to predict ImageNet
  accuracy: the structure is what matters (saturating returns in FLOPs, an optimal
  resolution that grows with capacity, depth/width balance, interactions such as SE x
  expansion, swish in late stages, per-architecture "training noise", and a measured
  latency that can exceed the prediction).
* ``gpunet-det-smalldata``: a second, differently shaped GPUNet objective, so that no single
  surrogate is tuned to: the detection space (inputs 320-512), an mAP-like score for a small
  detection dataset, and an edge-GPU (T4-like) latency proxy. Unlike the first surrogate,
  more compute is *not* always better: parameters beyond ~8 million overfit, so the
  optimum sits inside the latency budget along some directions; what pays is capacity at
  the stride-8/16 levels (small objects), input size, 5x5 kernels in the middle stages, SE
  only in the last stages, and ReLU over swish.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional, Tuple, TypeVar

import numpy as np

from gpunet_mm.models.arch_spec import GPUNetArch

from .latency_proxy import T4_PROXY, arch_flops, conv_ops, latency_proxy, tail_ops
from .registry import TEST_FUNCTIONS
from .space import BoxSpace, GPUNetSpace, SearchSpace

# ---------------------------------------------------------------------- test functions

_F = TypeVar('_F', bound=Callable[[np.ndarray], np.ndarray])


@dataclass(frozen=True)
class BenchmarkFunction:
    """A minimisation test function and its domain ``[lower, upper]`` in every dimension.

    What :data:`TEST_FUNCTIONS` holds: the domain belongs to the benchmark (the papers'
    choice), so it travels with the function instead of in a table beside it.
    """

    fn: Callable[[np.ndarray], np.ndarray]
    lower: float
    upper: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)


def benchmark_function(lower: float, upper: float) -> Callable[[_F], _F]:
    """Register the decorated function in :data:`TEST_FUNCTIONS` under its name, with its
    domain; the function itself is returned unchanged."""

    def register(fn: _F) -> _F:
        TEST_FUNCTIONS.register_module(fn.__name__, module=BenchmarkFunction(fn, lower, upper))
        return fn

    return register


# Ackley's [-5, 10] is LA-MCTS's (optimum off-centre)
@benchmark_function(-5.0, 10.0)
def ackley(x: np.ndarray) -> np.ndarray:
    """Ackley (a=20, b=0.2, c=2*pi); minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    d = x.shape[-1]
    a = -20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2, axis=-1) / d))
    b = -np.exp(np.sum(np.cos(2 * np.pi * x), axis=-1) / d)
    return a + b + 20.0 + math.e


@benchmark_function(-10.0, 10.0)
def levy(x: np.ndarray) -> np.ndarray:
    """Levy; minimum 0 at (1, ..., 1)."""
    x = np.asarray(x, dtype=float)
    w = 1 + (x - 1) / 4
    t1 = np.sin(np.pi * w[..., 0]) ** 2
    wi = w[..., :-1]
    t2 = np.sum((wi - 1) ** 2 * (1 + 10 * np.sin(np.pi * wi + 1) ** 2), axis=-1)
    wd = w[..., -1]
    t3 = (wd - 1) ** 2 * (1 + np.sin(2 * np.pi * wd) ** 2)
    return t1 + t2 + t3


@benchmark_function(-5.12, 5.12)
def rastrigin(x: np.ndarray) -> np.ndarray:
    """Rastrigin; minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    return 10.0 * x.shape[-1] + np.sum(x**2 - 10 * np.cos(2 * np.pi * x), axis=-1)


def arch_params(arch: GPUNetArch, with_tail: bool = True) -> float:
    """Parameters (M) of the blocks (and the tail): the overfitting measure of the det score."""
    n = 0.0
    for layer in arch.placed_layers():
        n += sum(op.weights for op in conv_ops(layer))
        n += 2 * layer.mid_channels * layer.se_channels
    if with_tail:
        n += sum(op.weights for op in tail_ops(arch))
    return n / 1e6


def _arch_noise(arch: GPUNetArch, salt: str) -> float:
    """A standard-normal draw fixed per architecture (like a training seed's variance)."""
    h = hashlib.sha256((salt + arch.structural_hash(32)).encode()).digest()
    u1 = (int.from_bytes(h[:8], 'little') + 0.5) / 2**64
    u2 = (int.from_bytes(h[8:16], 'little') + 0.5) / 2**64
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def surrogate_accuracy(arch: GPUNetArch, noise: float = 0.15) -> float:
    """An accuracy-like score (top-1 %, ~65-84) with interactions; see the module docstring."""
    g = arch_flops(arch)
    by_stage = {r.stage: r for r in arch.rows}
    depth = arch.num_layers
    acc = 85.0 - 12.0 * math.exp(-0.35 * g)  # diminishing returns in compute
    r_opt = 240.0 + 220.0 * math.tanh(g / 2.5)  # bigger nets want bigger inputs
    acc -= 6.0 * math.log2(arch.resolution / r_opt) ** 2
    acc -= 0.04 * max(0, depth - 32) ** 1.5  # very deep nets are hard to train
    acc -= 0.8 * max(0, 12 - depth) / 12  # and very shallow ones underfit
    for st, row in by_stage.items():
        late = st >= 5
        if row.act == 'swish':
            acc += 0.25 if late else -0.05
        if row.se:  # SE pays off with wide expansions, less with narrow ones
            acc += (0.12 * (row.expansion - 3)) if st >= 4 else -0.1
        if row.kernel == 5 and arch.resolution >= 384 and 3 <= st <= 6:
            acc += 0.12
    # width balance: late stages should be wider than early ones
    w4 = by_stage[4].out_channels if 4 in by_stage else 96
    w6 = by_stage[6].out_channels if 6 in by_stage else 128
    acc -= 0.6 * max(0.0, 1.5 - w6 / w4)
    return acc + noise * _arch_noise(arch, 'acc')


def _seed_noise(arch: GPUNetArch, seed: int, epochs: float) -> float:
    """A standard-normal draw fixed per (architecture, training run, epoch count)."""
    return _arch_noise(arch, f'curve:{int(seed)}:{float(epochs):.6g}:')


def learning_curve(
    final: float, arch: GPUNetArch, epochs: float, seed: int, full_epochs: float, gap: float
) -> float:
    """``final`` reached at ``full_epochs`` along an exponential approach that is slower
    for bigger networks, so curves cross: after a short rung a small network often leads a
    bigger one that ends ahead (what makes a rung's ranking imperfect). The noise of a
    single evaluation shrinks as training converges; at ``full_epochs`` the value is
    ``final`` exactly, so a search without rungs sees the objective it always saw."""
    if not epochs > 0:
        raise ValueError(f'epochs: got {epochs!r}; allowed: > 0')
    f = min(1.0, float(epochs) / float(full_epochs))
    g = arch_flops(arch)
    tau = 0.08 + 0.8 * g / (g + 12.0)  # bigger nets climb slower (a share of the schedule)
    rest = (math.exp(-f / tau) - math.exp(-1.0 / tau)) / (1.0 - math.exp(-1.0 / tau))
    noise = 0.07 * gap * (1.0 - f) * _seed_noise(arch, seed, epochs)
    return final - gap * rest + noise


def surrogate_curve(
    arch: Any, epochs: float, seed: int = 0, full_epochs: float = 8.0, gap: float = 15.0
) -> float:
    """The learning-curve version of :func:`surrogate_accuracy` (``--simulate`` with
    ``nas.fidelity``): ``function(arch, epochs, seed)``, ``arch`` a ``GPUNetArch`` or its
    dict; equal to :func:`surrogate_accuracy` at ``full_epochs``."""
    a = arch if isinstance(arch, GPUNetArch) else GPUNetArch.from_dict(arch)
    return learning_curve(surrogate_accuracy(a), a, epochs, seed, full_epochs, gap)


def det_smalldata_curve(
    arch: Any, epochs: float, seed: int = 0, full_epochs: float = 8.0, gap: float = 30.0
) -> float:
    """The learning-curve version of :func:`det_smalldata_map`."""
    a = arch if isinstance(arch, GPUNetArch) else GPUNetArch.from_dict(arch)
    return learning_curve(det_smalldata_map(a), a, epochs, seed, full_epochs, gap)


def det_smalldata_map(arch: GPUNetArch, noise: float = 0.2) -> float:
    """An mAP-like score (~15-40) of a detector trained on a small dataset; see the module
    docstring. Saturating in the stride-8/16 capacity and in input size, penalised beyond
    ~8 M backbone parameters, with its own per-stage preferences."""
    layers = arch.layers()
    size = arch.resolution
    cap = {3: 0.0, 4: 0.0, 5: 0.0}  # GMACs per output-stride level 8/16/32 (log2 = 3/4/5)
    level = 0
    for layer in layers:
        s_in = size
        if layer.stride == 2:
            level += 1
            size = (size + 1) // 2
        lv = min(max(level, 3), 5)
        k2 = layer.kernel**2
        macs = s_in * s_in * layer.in_channels * layer.mid_channels if layer.type == 'irb' else 0
        macs += size * size * (k2 * layer.mid_channels + layer.mid_channels * layer.out_channels)
        cap[lv] += macs / 1e9
    params = arch_params(arch, with_tail=False)
    by_stage = {r.stage: r for r in arch.rows}
    m = 18.0
    m += 7.0 * (1 - math.exp(-cap[3] / 0.6)) + 6.0 * (1 - math.exp(-cap[4] / 0.5))
    m += 3.0 * (1 - math.exp(-cap[5] / 0.3))
    m += 5.0 * math.log2(arch.resolution / 320.0)  # small objects want large inputs
    m -= 0.5 * max(0.0, params - 8.0)  # a small dataset overfits big backbones
    for st, row in by_stage.items():
        if row.act == 'swish':
            m -= 0.15
        if row.se:
            m += 0.3 if st >= 6 else -0.2
        if row.kernel == 5:
            m += 0.35 if st in (4, 5) else -0.05
        if row.type == 'irb' and row.expansion >= 5 and st <= 5:
            m -= 0.1 * (row.expansion - 4)  # wide expansions early: slow to train, little gain
    depth = arch.num_layers
    m -= 0.05 * max(0, depth - 28) ** 1.3
    return m + noise * _arch_noise(arch, 'det')


def measured_latency(arch: GPUNetArch, rel_noise: float = 0.04) -> float:
    """The "measured" latency: the proxy times an arch-specific, slightly biased factor.

    Measurements exceed predictions by up to ~10% for some architectures, so an
    optimiser that trusts the prediction blindly will see violations and must learn.
    """
    return latency_proxy(arch) * (1.0 + 0.02 + rel_noise * _arch_noise(arch, 'lat'))


# ---------------------------------------------------------------------- problems


@dataclass
class Problem:
    """An objective over a space, with its sense and (optional) constraint."""

    name: str
    space: SearchSpace
    evaluate: Callable[[Any], Tuple[float, Optional[float]]]  # obj -> (value, measured cost)
    minimize: bool = True
    optimum: Optional[float] = None
    constraint_fn: Optional[Callable[[Any], float]] = None
    budget: Optional[float] = None


PROBLEMS = ('ackley', 'levy', 'rastrigin', 'gpunet-surrogate', 'gpunet-det-smalldata')
#: the objectives over the GPUNet space (the ones the search is for)
GPUNET_PROBLEMS = ('gpunet-surrogate', 'gpunet-det-smalldata')


def make_problem(name: str, dims: int = 10, latency_budget: float = 1.0) -> Problem:
    """Build a benchmark problem by name; ``dims`` is ignored for the GPUNet problems.

    ``latency_budget`` (ms) applies to ``gpunet-surrogate`` (A100 proxy, default 1.0);
    ``gpunet-det-smalldata`` uses 3 times it on its T4-like proxy (3.0 ms by default).
    """
    if name in TEST_FUNCTIONS.module_dict:
        fn = TEST_FUNCTIONS.module_dict[name]
        if not isinstance(dims, int) or dims < 1:
            raise ValueError(f'dims: got {dims!r}; allowed: integers >= 1')
        return Problem(
            name=f'{name}-{dims}',
            space=BoxSpace(fn.lower, fn.upper, dims=dims),
            evaluate=lambda x: (float(fn(np.asarray(x))), None),
            minimize=True,
            optimum=0.0,
        )
    if name == 'gpunet-surrogate':
        return Problem(
            name=name,
            space=GPUNetSpace('classification'),
            evaluate=lambda arch: (surrogate_accuracy(arch), measured_latency(arch)),
            minimize=False,
            constraint_fn=latency_proxy,
            budget=float(latency_budget),
        )
    if name == 'gpunet-det-smalldata':
        return Problem(
            name=name,
            space=GPUNetSpace('detection'),
            evaluate=lambda arch: (
                det_smalldata_map(arch),
                latency_proxy(arch, T4_PROXY) * (1.03 + 0.03 * _arch_noise(arch, 'det-lat')),
            ),
            minimize=False,
            constraint_fn=partial(latency_proxy, gpu=T4_PROXY),
            budget=3.0 * float(latency_budget),
        )
    raise ValueError(f'problem: got {name!r}; allowed: {", ".join(PROBLEMS)}')


__all__ = [
    'ackley',
    'levy',
    'rastrigin',
    'BenchmarkFunction',
    'TEST_FUNCTIONS',
    'benchmark_function',
    'surrogate_accuracy',
    'surrogate_curve',
    'det_smalldata_curve',
    'learning_curve',
    'arch_params',
    'det_smalldata_map',
    'GPUNET_PROBLEMS',
    'measured_latency',
    'Problem',
    'PROBLEMS',
    'make_problem',
]
