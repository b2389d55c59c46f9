"""A small random sampler of GPUNet-like architectures, for latency benchmarks only.

It draws from the NAS stage table (:data:`gpunet_mm.nas.space.CLASSIFICATION_STAGES`, the
paper's stages 0-7: conv stem, convs, two fused-IRB stages, IRB stages, per stage layers,
filters, kernel, expansion, act and SE), so there is one table to keep right. It applies
its own caps, because measuring a hundred archs on a CPU must take minutes: at most
``max_layers`` layers per stage and 224-320 px. It also samples its own way (uniform per
choice, expansion 1 added to the table's, SE with probability 1/2), independently of how
the search samples: it exists to test the latency predictor on varied networks, and its
seeded output is what the committed predictor benchmark was fitted on.
"""

from __future__ import annotations

import random
from typing import Any, List, Sequence, Set, Tuple

from ..models.arch_spec import BlockRow, GPUNetArch
from ..nas.space import CLASSIFICATION_STAGES, TAIL_CHANNELS, StageSpec

#: expansion ratios on top of each IRB/fused stage's own: e = 1 (no widening) is cheap,
#: which the predictor must see even though the search never proposes it
EXTRA_EXPANSIONS = (1,)
#: default input sizes: the low end of the search's, so exports and timings stay quick
RESOLUTIONS = (224, 256, 288, 320)


def _row(rng: random.Random, spec: StageSpec, num: int) -> BlockRow:
    """One row of ``num`` layers with the stage's choices drawn uniformly.

    The draw order (filters, kernel, act, then expansion and SE) is part of the seeded
    output the committed benchmark results come from; keep it.
    """
    out = rng.choice(spec.filter_choices)
    kernel = rng.choice(spec.kernels)
    act = rng.choice(spec.acts)
    if spec.block == 'conv':
        return BlockRow('conv', kernel, out, num, spec.stride, 1, act, False, spec.stage)
    e = rng.choice(tuple(sorted({*EXTRA_EXPANSIONS, *spec.expansions})))
    se = rng.random() < 0.5 if len(set(spec.se)) > 1 else bool(spec.se[0])
    return BlockRow(spec.block, kernel, out, num, spec.stride, e, act, se, spec.stage)


def sample_random_arch(
    rng: random.Random,
    max_layers: int = 4,
    resolutions: Sequence[int] = RESOLUTIONS,
    name: str = 'random',
    stages: Sequence[StageSpec] = CLASSIFICATION_STAGES,
) -> GPUNetArch:
    """One architecture: every stage draws layers, filters, kernel, expansion, act and SE.

    ``max_layers`` caps each stage's layer count (a stage's minimum still applies, so the
    stem is always there); ``stages`` defaults to the NAS table.
    """
    rows: List[BlockRow] = []
    for spec in stages:
        lo, hi = spec.layers
        num = rng.randint(lo, min(hi, max(lo, max_layers)))
        if num:
            rows.append(_row(rng, spec, num))
    return GPUNetArch(
        name=name,
        rows=tuple(rows),
        tail_channels=(TAIL_CHANNELS,),
        resolution=rng.choice(tuple(resolutions)),
    )


def sample_random_archs(n: int, seed: int = 0, **kwargs: Any) -> List[GPUNetArch]:
    """``n`` architectures with distinct structural hashes, reproducible from ``seed``."""
    rng = random.Random(seed)
    out: List[GPUNetArch] = []
    seen: Set[Tuple[str, int]] = set()
    while len(out) < n:
        a = sample_random_arch(rng, name=f'random-{seed}-{len(out)}', **kwargs)
        key = (a.structural_hash(), a.resolution)
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out
