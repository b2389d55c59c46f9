"""A small random sampler of GPUNet-like architectures, for latency benchmarks only.

It follows the paper's stage table (docs: /work/shared/reference/search_space.md; stages 0-7:
conv stem, convs, two fused-IRB stages, IRB stages, per-stage kernel/expansion/act/SE) but
caps the layers per stage and the resolution so that measuring a hundred of them on a CPU
takes minutes. It is deliberately independent of the real search space (``gpunet_mm.nas``),
which may sample differently: this module exists to test the latency predictor on varied
networks, not to define the search.
"""

from __future__ import annotations

import random
from typing import List, Sequence, Tuple

from ..models.arch_spec import BlockRow, GPUNetArch

# (stage, block type, stride, (min layers, max layers), (min, max, step) filters)
STAGE_TABLE: Tuple[Tuple[int, str, int, Tuple[int, int], Tuple[int, int, int]], ...] = (
    (0, 'conv', 2, (1, 1), (24, 32, 8)),
    (1, 'conv', 1, (1, 4), (24, 32, 8)),
    (2, 'fused', 2, (1, 8), (32, 80, 16)),
    (3, 'fused', 2, (1, 8), (48, 112, 16)),
    (4, 'irb', 2, (1, 10), (96, 192, 16)),
    (5, 'irb', 1, (0, 15), (112, 224, 16)),
    (6, 'irb', 2, (1, 15), (128, 416, 32)),
    (7, 'irb', 1, (0, 15), (256, 832, 64)),
)
#: the search space's expansion choices (gpunet_mm.nas.space), 1 included
EXPANSIONS = (1, 2, 3, 4, 5, 6)


def sample_random_arch(
    rng: random.Random,
    max_layers: int = 4,
    resolutions: Sequence[int] = (224, 256, 288, 320),
    name: str = 'random',
) -> GPUNetArch:
    """One architecture: every stage draws layers, filters, kernel, expansion, act and SE.

    ``max_layers`` caps each stage's layer count (the table's own maximum still applies).
    """
    rows: List[BlockRow] = []
    for stage, typ, stride, (lo, hi), (fmin, fmax, fstep) in STAGE_TABLE:
        num = rng.randint(lo, min(hi, max(lo, max_layers)))
        if num == 0:
            continue
        out = rng.randrange(fmin, fmax + 1, fstep)
        kernel = rng.choice((3, 5))
        act = rng.choice(('relu', 'swish'))
        if typ == 'conv':
            rows.append(BlockRow('conv', kernel, out, num, stride, 1, act, False, stage))
        else:
            e = rng.choice(EXPANSIONS)
            se = rng.random() < 0.5
            rows.append(BlockRow(typ, kernel, out, num, stride, e, act, se, stage))
    return GPUNetArch(
        name=name,
        rows=tuple(rows),
        tail_channels=(1792,),
        resolution=rng.choice(tuple(resolutions)),
    )


def sample_random_archs(n: int, seed: int = 0, **kwargs) -> List[GPUNetArch]:
    """``n`` architectures with distinct structural hashes, reproducible from ``seed``."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        a = sample_random_arch(rng, name=f'random-{seed}-{len(out)}', **kwargs)
        key = (a.structural_hash(), a.resolution)
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out
