"""The predictor's features and the benchmark's random archs stay what the fits were made on.

The committed predictors (``gpunet_mm/deploy/data/*.json``) store one coefficient per
feature, so :func:`arch_features` must give the same numbers for the same arch and shape
whatever the code inside looks like; and the predictor benchmark (``benchmarks/``,
docs/deploy.md) fitted on the seeded :func:`sample_random_archs` output. Both were frozen
in ``data/arch_features_frozen.json`` from the code before ``arch_features`` used
:meth:`GPUNetArch.levels` and before the sampler read the NAS stage table.
"""

import hashlib
import json
import os

import numpy as np
import pytest

from gpunet_mm.deploy.predictor import arch_features
from gpunet_mm.deploy.random_archs import sample_random_archs
from gpunet_mm.models.arch_spec import BlockRow, GPUNetArch
from gpunet_mm.models.tiers import get_tier

FROZEN = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'data', 'arch_features_frozen.json'
)
with open(FROZEN) as _f:
    _DATA = json.load(_f)


def _arch(ref):
    return get_tier(ref) if isinstance(ref, str) else GPUNetArch.from_dict(ref)


@pytest.mark.parametrize(
    'entry',
    _DATA['features'],
    ids=[
        f'{e["arch"] if isinstance(e["arch"], str) else e["arch"]["name"]}'
        f'-{e["shape"]}-b{e["channel_block"]}{"-oi" if e.get("out_indices") else ""}'
        for e in _DATA['features']
    ],
)
def test_arch_features_match_frozen(entry):
    shape = tuple(entry['shape']) if entry['shape'] else None
    f = arch_features(
        _arch(entry['arch']),
        shape,
        out_indices=entry.get('out_indices'),
        channel_block=entry['channel_block'],
    )
    # integer sums divided by powers of ten: the same work gives the same float
    np.testing.assert_allclose(f, entry['features'], rtol=1e-12, atol=0)


def test_frozen_cases_cover_tiers_random_and_non_square_shapes():
    """The table must keep testing what it claims (every tier, random archs, H != W)."""
    names = {e['arch'] for e in _DATA['features'] if isinstance(e['arch'], str)}
    assert len(names) == 7
    assert sum(not isinstance(e['arch'], str) for e in _DATA['features']) >= 15
    assert any(e['shape'] and e['shape'][0] != e['shape'][1] for e in _DATA['features'])
    assert {e['channel_block'] for e in _DATA['features']} == {1, 8, 16}


def test_arch_features_size_dependent_terms_follow_padded_conv_arithmetic():
    """An independent check of the feature-map sizes: one 3x3 stride-2 conv, H != W.

    ``(n + 2 * 1 - 3) // 2 + 1`` is the output side, so a 33x20 input gives 17x10 and the
    dense FLOPs are ``9 * 3 * 16 * 17 * 10``.
    """
    arch = GPUNetArch(
        'one-conv',
        (
            BlockRow('conv', 3, 16, 1, 2, stage=0),
            *(BlockRow('conv', 1, 16, 1, 2, stage=i) for i in range(1, 5)),
        ),
        tail_channels=(),
    )
    f = arch_features(arch, (33, 20), out_indices=(4,))
    sides = [(17, 10), (9, 5), (5, 3), (3, 2), (2, 1)]
    dense = 9 * 3 * 16 * 17 * 10 + sum(16 * 16 * h * w for h, w in sides[1:])
    assert f[0] * 1e9 == pytest.approx(dense, rel=1e-12)


@pytest.mark.parametrize('run', _DATA['random_archs'], ids=lambda r: f'seed{r["seed"]}')
def test_random_archs_seeded_output_is_stable(run):
    kw = {k: v for k, v in run.items() if k not in ('n', 'seed', 'sha256')}
    archs = sample_random_archs(run['n'], seed=run['seed'], **kw)
    blob = ','.join(a.to_json(sort_keys=True) for a in archs)
    assert hashlib.sha256(blob.encode()).hexdigest() == run['sha256']
