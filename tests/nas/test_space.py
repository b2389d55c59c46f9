import json
import os

import numpy as np
import pytest

from gpunet_mm.models.arch_spec import GPUNetArch
from gpunet_mm.models.tiers import get_tier
from gpunet_mm.nas import (
    CLASSIFICATION_STAGES,
    BoxSpace,
    Dim,
    DiscreteSpace,
    GPUNetSpace,
    InfeasibleSpaceError,
    build_space,
)
from gpunet_mm.nas.latency_proxy import latency_proxy


@pytest.fixture(scope='module')
def space():
    return GPUNetSpace()


def test_stage_table_is_the_papers():
    t = {s.stage: s for s in CLASSIFICATION_STAGES}
    assert [t[i].block for i in range(8)] == ['conv', 'conv'] + ['fused'] * 2 + ['irb'] * 4
    assert [t[i].stride for i in range(8)] == [2, 1, 2, 2, 2, 1, 2, 1]
    assert [t[i].layers for i in range(8)] == [
        (1, 1),
        (1, 4),
        (1, 8),
        (1, 8),
        (1, 10),
        (0, 15),
        (1, 15),
        (0, 15),
    ]
    assert t[6].filter_choices == tuple(range(128, 417, 32))
    assert t[7].filter_choices == tuple(range(256, 833, 64))
    assert t[2].expansions == (2, 3, 4, 5, 6) and t[1].expansions == ()
    assert all(s.kernels == (3, 5) and s.acts == ('relu', 'swish') for s in t.values())


def test_dims_and_resolutions(space):
    assert space.dims == 44  # 3 + 4 + 6 x 6 + resolution
    assert space.dim_specs[space.dim('resolution')].choices == tuple(range(224, 513, 32))
    assert space.dim_specs[space.dim('s2.act')].ordinal is False


@pytest.mark.parametrize('method', ['uniform', 'lhs', 'sobol'])
def test_samples_decode_to_valid_archs_and_round_trip(space, method):
    X = space.sample(64, 0, method)
    assert X.shape == (64, 44) and all(space.contains(x) for x in X)
    for x in X:
        arch = space.decode(x)
        assert isinstance(arch, GPUNetArch)
        arch.validate()
        assert arch.family == 'gpunet' and arch.tail_channels == (1792,)
        assert arch.rows[0].stage == 0 and arch.rows[0].stride == 2
        assert arch.rows[0].type == 'conv'
        np.testing.assert_array_equal(space.encode(arch), x)
        # JSON: both the space's and the arch spec's
        np.testing.assert_array_equal(space.from_json(json.loads(json.dumps(space.to_json(x)))), x)
        np.testing.assert_array_equal(space.encode(GPUNetArch.from_json(arch.to_json())), x)


def test_lhs_stratifies_every_dimension():
    sp = DiscreteSpace([Dim('a', tuple(range(8))), Dim('b', tuple(range(8)))])
    X = sp.sample(8, 3, 'lhs')
    for j in range(2):
        assert sorted(X[:, j]) == list(range(8))
    box = BoxSpace(0, 1, dims=3)
    U = box.sample(10, 1, 'lhs')
    for j in range(3):
        assert sorted(np.floor(U[:, j] * 10)) == list(range(10))


def test_hash_is_stable_and_matches_structure(space):
    x = space.canonical(np.array([i % d.levels for i, d in enumerate(space.dim_specs)], float))
    # pinned: a change here breaks resuming searches and comparing results across versions
    assert (
        space.key(x)
        == '0.1.0.3.0.1.0.7.0.1.0.1.0.5.4.1.1.1.0.9.6.1.2.1.0.9.2.1.3.1.0.1.2.1.4.1.0.5.8.1.0.1.0.3'
    )
    assert space.hash(x) == '84afbbadf19b027d'
    assert space.hash(x) == space.decode(x).structural_hash()
    X = space.sample(300, 1)
    keys = {space.key(x) for x in X}
    hashes = {space.hash(x) for x in X}
    assert len(keys) == len(hashes)


def test_dropped_stage_makes_its_choices_inactive(space):
    x = space.sample(1, 2)[0]
    li = space.dim('s5.layers')
    x[li] = 0
    y = x.copy()
    y[space.dim('s5.filters')] = 3
    y[space.dim('s5.se')] = 1
    assert space.key(x) == space.key(y)
    assert space.decode(x).structural_hash() == space.decode(y).structural_hash()
    assert all(r.stage != 5 for r in space.decode(x).rows)


def test_neighbours_mutate_local_samples(space):
    rng = np.random.default_rng(0)
    x = space.sample(1, 5)[0]
    N = space.neighbours(x)
    assert len(N) > 20 and all(space.contains(n) for n in N)
    assert len({space.key(n) for n in N}) == len(N) and space.key(x) not in {
        space.key(n) for n in N
    }
    for _ in range(50):
        m = space.mutate(x, rng)
        assert space.contains(m)
    L = space.local_samples(x, 200, rng, 0.2)
    assert all(space.contains(v) for v in L)
    moved = (L != x).sum(axis=1)
    assert moved.min() >= 0 and np.median(moved) <= 4


def test_detection_variant_from_config():
    sp = build_space(dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384]))
    assert sp.dim_specs[sp.dim('resolution')].choices == (320, 384)
    assert {sp.decode(x).resolution for x in sp.sample(40, 0)} == {320, 384}
    assert build_space(sp.config()) == sp
    one = GPUNetSpace('detection', resolutions=[512])
    assert one.dims == 43 and one.decode(one.sample(1, 0)[0]).resolution == 512
    default = GPUNetSpace('detection')
    assert default.resolutions == (320, 384, 448, 512)


def test_stage_override_and_config_round_trip():
    sp = build_space(dict(type='GPUNetSpace', stages=[dict(stage=7, layers=[0, 4])]))
    assert sp.dim_specs[sp.dim('s7.layers')].choices == (0, 1, 2, 3, 4)
    again = build_space(json.loads(json.dumps(sp.config())))
    assert again == sp and again.dims == sp.dims
    box = build_space(dict(type='BoxSpace', lower=-1, upper=2, dims=3))
    assert box.dims == 3 and build_space(box.config()) == box


@pytest.mark.parametrize(
    'cfg, match',
    [
        (dict(type='GPUNetSpace', stages=[dict(stage=2, layers=(5, 3))]), r'layers: got \[5, 3\]'),
        (dict(type='GPUNetSpace', stages=[dict(stage=3, filters=(112, 48, 16))]), 'min <= max'),
        (dict(type='GPUNetSpace', stages=[dict(stage=3, kernels=())]), 'kernels: empty'),
        (dict(type='GPUNetSpace', stages=[dict(stage=3, bogus=1)]), 'bogus'),
        (dict(type='GPUNetSpace', variant='segmentation'), "got 'segmentation'"),
        (dict(type='GPUNetSpace', resolutions=[]), 'resolutions'),
        (dict(type='BoxSpace', lower=[0, 3], upper=[1, 2]), r'dim 1: lower 3.0 >= upper 2.0'),
        (dict(type='NoSuchSpace'), 'NoSuchSpace'),
        (dict(variant='detection'), 'type'),
    ],
)
def test_bad_space_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_space(cfg)


def test_empty_discrete_space():
    with pytest.raises(ValueError, match='no dimensions'):
        DiscreteSpace([])
    with pytest.raises(ValueError, match='no choices'):
        Dim('a', ())


def test_encode_rejects_archs_outside_the_space(space):
    with pytest.raises(ValueError, match='tail_channels'):
        space.encode(get_tier(1))  # published nets use tail 1280 and multi-row stages
    arch = space.decode(space.sample(1, 0)[0])
    rows = list(arch.rows)
    rows[2] = rows[2].__class__(**{**rows[2].__dict__, 'out_channels': 40})
    with pytest.raises(ValueError, match=r's2.filters: got 40; allowed: \[32, 48, 64, 80\]'):
        space.encode(arch.replace(rows=tuple(rows)))
    with pytest.raises(ValueError, match='not in the space'):
        space.decode(np.full(44, 99.0))


def test_constrained_sampling_and_repair(space):
    budget = 0.6
    X = space.sample_feasible(50, 0, lambda x: latency_proxy(space.decode(x)), budget)
    assert len({space.key(x) for x in X}) == 50
    assert all(latency_proxy(space.decode(x)) <= budget for x in X)
    big = space.encode(space.decode(np.array(space.bounds[1])))
    fixed = space.repair(big, lambda x: latency_proxy(space.decode(x)), budget)
    assert fixed is not None and latency_proxy(space.decode(fixed)) <= budget


def test_budget_no_architecture_meets_fails_fast(space):
    smallest = latency_proxy(space.smallest())
    calls = []

    def cost(x):
        calls.append(1)
        return latency_proxy(space.decode(x))

    with pytest.raises(InfeasibleSpaceError, match='budget'):
        space.sample_feasible(5, 0, cost, smallest * 0.5, max_attempts=5)
    assert len(calls) < 2000  # bounded, no endless rejection loop


def test_box_space_basics():
    box = BoxSpace(-5, 10, dims=4)
    X = box.sample(100, 0)
    assert X.min() >= -5 and X.max() <= 10
    np.testing.assert_array_equal(box.decode(X[0]), X[0])
    assert box.key(X[0]) == box.key(box.from_json(json.loads(json.dumps(box.to_json(X[0])))))
    L = box.local_samples(X[0], 50, np.random.default_rng(0), 0.1)
    assert np.all(np.abs(box.to_unit(L) - box.to_unit(X[0])) <= 0.05 + 1e-12)
    assert not box.contains(np.full(4, 11.0))
    with pytest.raises(ValueError, match='dims'):
        BoxSpace(0, 1, dims=0)


def test_space_and_optimizer_from_an_mmengine_config_file():
    from mmengine.config import Config

    from gpunet_mm.nas import LaMCTSBO, build_optimizer

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = Config.fromfile(os.path.join(root, 'configs/nas/lamcts_gpunet-det_space.py'))
    space = build_space(cfg.search_space.to_dict())
    assert space == GPUNetSpace('detection', resolutions=[320, 384, 448, 512])
    opt = build_optimizer(cfg.search_optimizer.to_dict(), space, minimize=False)
    assert isinstance(opt, LaMCTSBO) and opt.calibration_quantile == 0.8
    (t,) = opt.ask(1)
    assert t.arch.resolution in (320, 384, 448, 512)


def test_key_is_the_joined_canonical_point(space):
    """``key`` takes a fast path; it must equal the canonical point's indices joined (the
    persisted format of journals and optimiser states), inactive dims included."""
    rng = np.random.default_rng(0)
    X = space.sample(200, rng)
    X[::3, space.dim('s5.layers')] = 0  # stage 5 off: its other choices are inactive
    X[::4, space.dim('s7.layers')] = 0
    for x in X:
        want = '.'.join(str(int(v)) for v in space.canonical(x))
        assert space.key(x) == want
        assert space.key(space.canonical(x)) == want
    off = X[0].copy()
    off[space.dim('s5.kernel')] = 1 - off[space.dim('s5.kernel')]  # an inactive choice
    assert space.key(off) == space.key(X[0])
    disc = DiscreteSpace([Dim('a', (1, 2, 3)), Dim('b', ('x', 'y'))])
    assert disc.key(np.array([2.0, 1.0])) == '2.1'


def test_contains_rejects_non_points(space):
    x = space.sample(1, np.random.default_rng(1))[0]
    assert space.contains(x)
    for bad in (np.nan, np.inf, -np.inf, -1.0, 0.5, 1e9):
        y = x.copy()
        y[3] = bad
        assert not space.contains(y), bad
    assert not space.contains(x[:-1])
