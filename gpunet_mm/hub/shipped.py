"""The shipped table: the published tiers (read from ``models/tiers.py``) and measured rows.

Nothing here restates a figure. Paper rows are built from each tier's ``meta`` (top-1, the
latencies keyed as in :data:`~gpunet_mm.models.tiers.PUBLISHED_TARGETS`, params, FLOPs);
measured rows come from the JSON Lines files in ``gpunet_mm/hub/data/`` that
``benchmarks/benchmark_hub.py`` writes (and that copy accuracy from the same ``meta``, so a
test can check they agree).
"""

from __future__ import annotations

import copy
import glob
import os.path as osp
from functools import lru_cache
from typing import List, Tuple

from ..models.tiers import PUBLISHED_TARGETS, TIER_SHORT, TIERS
from .configs import classification_config
from .entry import HubEntry, Provenance
from .store import read_entries

DATA_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')
IMAGENET = 'ImageNet-1k val'
PUBLISHED_STAT = 'as published in the release README and the paper'


def release_schedule(tier: int) -> str:
    """How the release trained a tier (its hub key ends in ``-D`` when distilled)."""
    if TIERS[tier].meta['hub_key'].endswith('-D'):
        return 'GPUNet release training with knowledge distillation'
    return 'GPUNet release training (configs/_base_/schedules/gpunet_rmsprop_450e.py)'


def published_entries() -> List[HubEntry]:
    """One paper row per tier and published latency."""
    out = []
    for i, arch in enumerate(TIERS):
        meta = arch.meta
        for key, ms in meta['latency_ms'].items():
            target = PUBLISHED_TARGETS[key]
            out.append(
                HubEntry(
                    name=arch.name,
                    task='classification',
                    input_shape=(arch.resolution, arch.resolution),
                    latency_ms=ms,
                    latency_stat=PUBLISHED_STAT,
                    provenance=Provenance(kind='paper', source=meta['source']),
                    metric=meta['top1'],
                    metric_name='top1',
                    metric_dataset=IMAGENET,
                    metric_schedule=release_schedule(i),
                    metric_source='paper',
                    params=meta['params'],
                    flops=meta['flops'],
                    tier=arch.name,
                    config=classification_config(TIER_SHORT[i]),
                    **target,
                )
            )
    return out


def data_files() -> List[str]:
    return sorted(glob.glob(osp.join(DATA_DIR, '*.jsonl')))


@lru_cache(maxsize=1)
def _shipped() -> Tuple[HubEntry, ...]:
    entries = published_entries()
    for path in data_files():
        entries.extend(read_entries(path))
    return tuple(entries)


def shipped_entries() -> List[HubEntry]:
    """The shipped table (fresh copies: callers may modify them)."""
    return copy.deepcopy(list(_shipped()))
