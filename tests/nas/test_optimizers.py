import json
import os

import numpy as np
import pytest

from gpunet_mm.nas import (
    BoxSpace,
    Dim,
    DiscreteSpace,
    GPUNetSpace,
    InfeasibleSpaceError,
    LaMCTSBO,
    build_optimizer,
)
from gpunet_mm.nas.latency_proxy import latency_proxy
from gpunet_mm.nas.objectives import ackley, measured_latency

from .paired import assert_paired_wins

try:
    import optuna  # noqa: F401

    METHODS = ['lamcts', 'random', 'evolution', 'tpe']
except ImportError:  # optional dependency
    METHODS = ['lamcts', 'random', 'evolution']

FAST = dict(n_candidates=200, gp_max_points=40)  # keeps LA-MCTS-BO tests quick


def opts(method, **kw):
    base = dict(FAST) if method == 'lamcts' else {}
    if method == 'lamcts':
        base['n_init'] = kw.pop('n_init', 8)
    else:
        kw.pop('n_init', None)
    base.update(kw)
    return dict(type=method, **base)


def toy_discrete():
    """6 ordinal dims x 8 levels and a categorical; optimum 0 at (5, 2, 7, 0, 3, 6, 'b')."""
    dims = [Dim(f'o{i}', tuple(range(8))) for i in range(6)] + [Dim('c', ('a', 'b', 'c'), False)]
    space = DiscreteSpace(dims)
    target = np.array([5, 2, 7, 0, 3, 6])

    def f(v):
        o = np.array([v[f'o{i}'] for i in range(6)])
        return float(np.sum((o - target) ** 2) + (0 if v['c'] == 'b' else 3))

    return space, f


def run(opt, f, n, batch=1, cost=None):
    while opt.n_told < n:
        for t in opt.ask(min(batch, n - opt.n_told)):
            opt.tell(t, f(t.obj), cost=None if cost is None else cost(t.obj))
    return opt


@pytest.mark.parametrize('method', METHODS)
def test_every_method_same_interface_box(method):
    space = BoxSpace(-5, 10, dims=3)
    opt = build_optimizer(opts(method), space, seed=1)
    run(opt, lambda x: float(ackley(x)), 20, batch=4)
    assert opt.n_told == 20 and len(opt.trials) == 20
    assert len({t.key for t in opt.trials}) == 20
    assert all(t.status == 'complete' for t in opt.trials)
    assert opt.best.value == min(t.value for t in opt.trials)


@pytest.mark.parametrize('method', METHODS)
def test_every_method_same_interface_gpunet_with_constraint(method):
    space = GPUNetSpace()
    opt = build_optimizer(
        opts(method), space, seed=0, minimize=False, constraint_fn=latency_proxy, budget=0.9
    )
    trials = opt.ask(6)
    assert len({t.key for t in trials}) == 6
    for t in reversed(trials):  # asynchronous: any order
        assert t.arch.structural_hash() == space.hash(t.x)
        assert t.predicted_cost <= 0.9
        opt.tell(t, float(t.arch.num_layers))
    assert opt.best.value == max(t.value for t in trials)


def test_lamcts_finds_discrete_optimum_and_beats_random():
    """10 seeds, paired: LA-MCTS wins on >= 8 of them and finds the optimum's basin."""
    space, f = toy_discrete()
    found = {}
    for method in ('lamcts', 'random'):
        found[method] = []
        for seed in range(10):
            opt = build_optimizer(opts(method, n_init=10), space, seed=seed)
            run(opt, f, 50)
            found[method].append(opt.best.value)
    assert np.median(found['lamcts']) <= 2.0  # random search: ~15 at 50 trials
    assert_paired_wins(found['lamcts'], found['random'], minimize=True, min_wins=8)


def test_lamcts_reaches_ackley_threshold():
    space = BoxSpace(-5, 10, dims=4)
    opt = LaMCTSBO(space, seed=0, n_init=10, n_candidates=300, gp_max_points=60)
    run(opt, lambda x: float(ackley(x)), 70)
    assert opt.best.value < 2.5  # random search with 70 samples: ~8


@pytest.mark.parametrize('strategy', ['kriging_believer', 'constant_liar'])
def test_batches_are_distinct_valid_and_async(strategy):
    space = BoxSpace(-5, 10, dims=3)
    opt = LaMCTSBO(space, seed=3, batch_strategy=strategy, **{**FAST, 'n_init': 6})
    rng = np.random.default_rng(0)
    pending = []
    for _ in range(5):
        pending += opt.ask(4)
        keys = [t.key for t in opt.trials]
        assert len(set(keys)) == len(keys)
        assert all(space.contains(np.array(t.x)) for t in pending)
        rng.shuffle(pending)  # tell half, in random order, keep the rest running
        for t in pending[: len(pending) // 2]:
            opt.tell(t, float(ackley(t.x)))
        pending = pending[len(pending) // 2 :]
    assert len(opt.pending) == len(pending) > 0


def test_a_batch_learns_its_model_once(monkeypatch):
    """ask(8) fits the partitions and the GP hyperparameters for its first point only (the
    others reuse them with their fantasies), yet its points are distinct and spread; ask(1)
    learns them every time, as before."""
    space = BoxSpace(-5, 10, dims=4)
    opt = LaMCTSBO(space, seed=0, **{**FAST, 'n_init': 8, 'leaf_size': 5})
    run(opt, lambda x: float(ackley(x)), 40)
    calls = {'gp': 0, 'split': 0}
    fit, split = LaMCTSBO._fit_gp_hyper, LaMCTSBO._split

    def counting_fit(self, *a):
        calls['gp'] += 1
        return fit(self, *a)

    def counting_split(self, *a):
        calls['split'] += 1
        return split(self, *a)

    monkeypatch.setattr(LaMCTSBO, '_fit_gp_hyper', counting_fit)
    monkeypatch.setattr(LaMCTSBO, '_split', counting_split)
    batch = opt.ask(8)
    assert calls['gp'] == 1
    depth = opt.last_leaf_depth
    assert depth >= 1 and calls['split'] <= 2 * max(depth, 1) + 2  # not 8 descents' worth
    X = np.array([t.x for t in batch])
    assert len({t.key for t in batch}) == 8
    assert np.min(np.linalg.norm(X[:, None] - X[None], axis=-1)[np.triu_indices(8, 1)]) > 0
    for t in batch:
        opt.tell(t, float(ackley(t.x)))
    calls.update(gp=0, split=0)
    for _ in range(3):
        (t,) = opt.ask(1)
        opt.tell(t, float(ackley(t.x)))
    assert calls['gp'] == 3 and calls['split'] >= 3


@pytest.mark.parametrize('method', METHODS)
def test_save_load_identical_continuation(method, tmp_path):
    space = GPUNetSpace()
    kw = dict(seed=7, minimize=False, constraint_fn=latency_proxy, budget=1.0)
    f = lambda a: float(a.num_layers) - 0.01 * a.resolution  # noqa: E731
    opt = build_optimizer(opts(method), space, **kw)
    run(opt, f, 10, batch=3)
    extra = opt.ask(2)  # still running at save time
    path = str(tmp_path / 'state.json')
    opt.save(path)
    assert not [p for p in os.listdir(tmp_path) if p != 'state.json']  # no temp left
    resumed = build_optimizer(opts(method), space, **kw).load(path)
    for o in (opt, resumed):
        o.tell(extra[1].id, 3.0)
    a = [t.key for t in opt.ask(3)]
    b = [t.key for t in resumed.ask(3)]
    assert a == b
    assert json.dumps(opt.state_dict()) == json.dumps(resumed.state_dict())


def test_load_refuses_a_different_configuration(tmp_path):
    space = BoxSpace(0, 1, dims=2)
    opt = LaMCTSBO(space, seed=0)
    opt.save(str(tmp_path / 's.json'))
    with pytest.raises(ValueError, match='saved optimizer'):
        LaMCTSBO(space, seed=0, leaf_size=30).load(str(tmp_path / 's.json'))
    with pytest.raises(ValueError, match='saved space'):
        LaMCTSBO(BoxSpace(0, 2, dims=2), seed=0).load(str(tmp_path / 's.json'))


def test_crash_during_save_keeps_previous_file(tmp_path, monkeypatch):
    space = BoxSpace(0, 1, dims=2)
    opt = build_optimizer('random', space, seed=0)
    run(opt, lambda x: float(x.sum()), 5)
    path = str(tmp_path / 's.json')
    opt.save(path)
    before = open(path).read()
    run(opt, lambda x: float(x.sum()), 8)

    def boom(*a, **k):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', boom)
    with pytest.raises(OSError, match='disk full'):
        opt.save(path)
    assert open(path).read() == before
    assert os.listdir(tmp_path) == ['s.json']


def test_same_seed_same_proposals_other_seed_differs():
    space = BoxSpace(-5, 10, dims=3)
    runs = []
    for seed in (0, 0, 1):
        opt = LaMCTSBO(space, seed=seed, **{**FAST, 'n_init': 5})
        run(opt, lambda x: float(ackley(x)), 12)
        runs.append([t.key for t in opt.trials])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_bad_tells_leave_state_intact():
    space = BoxSpace(0, 1, dims=2)
    opt = LaMCTSBO(space, seed=0, **{**FAST, 'n_init': 4})
    a, b, c = opt.ask(3)
    opt.tell(a, 1.0)
    snapshot = json.dumps(opt.state_dict())
    with pytest.raises(ValueError, match='already told'):
        opt.tell(a, 2.0)
    with pytest.raises(ValueError, match='unknown trial id 99'):
        opt.tell(99, 1.0)
    with pytest.raises(ValueError, match='value is None'):
        opt.tell(b)
    with pytest.raises(ValueError, match='not a number'):
        opt.tell(b, 'high')
    with pytest.raises(ValueError, match='ask n'):
        opt.ask(0)
    assert json.dumps(opt.state_dict()) == snapshot
    # NaN and explicit failures are recorded, not modelled, never proposed again
    assert opt.tell(b, float('nan')).status == 'failed'
    assert opt.tell(c, failed=True, error='CUDA OOM').status == 'failed'
    X, y = opt.observations()
    assert len(y) == 1 and np.all(np.isfinite(y))
    run(opt, lambda x: float(x.sum()), 15)
    keys = [t.key for t in opt.trials]
    assert len(set(keys)) == len(keys)


def test_maximise():
    space = BoxSpace(-5, 10, dims=3)
    opt = LaMCTSBO(space, seed=0, minimize=False, **{**FAST, 'n_init': 8})
    run(opt, lambda x: -float(ackley(x)), 30)
    assert opt.best.value == max(t.value for t in opt.trials)
    assert opt.best.value > -8


def test_constraint_and_budget_validation():
    space = GPUNetSpace()
    with pytest.raises(ValueError, match='give both or neither'):
        LaMCTSBO(space, constraint_fn=latency_proxy)
    smallest = latency_proxy(space.smallest())
    with pytest.raises(InfeasibleSpaceError, match='no architecture'):
        LaMCTSBO(space, constraint_fn=latency_proxy, budget=smallest * 0.5)
    with pytest.raises(ValueError, match='batch_strategy'):
        LaMCTSBO(space, batch_strategy='thompson-ish')
    with pytest.raises(ValueError, match='optimizer type'):
        build_optimizer('hyperband', space)


def depth_cost(arch):
    """A cheap stand-in constraint (thousands of proposals in seconds)."""
    return arch.num_layers + arch.resolution / 32


@pytest.mark.parametrize('method', ['random', 'evolution'])
def test_constraint_respected_over_thousands_of_proposals(method):
    space = GPUNetSpace()
    budget = 40
    opt = build_optimizer(method, space, seed=0, constraint_fn=depth_cost, budget=budget)
    for _ in range(250):
        for t in opt.ask(8):
            assert depth_cost(t.arch) <= budget
            opt.tell(t, -float(t.arch.num_layers))
    assert opt.n_told == 2000


def test_lamcts_constraint_and_learning_from_measured_violations():
    space = GPUNetSpace()
    budget = 0.8
    opt = LaMCTSBO(
        space, seed=0, minimize=False, constraint_fn=latency_proxy, budget=budget, **FAST
    )
    n_infeasible = 0
    for _ in range(12):
        allowed = opt.effective_budget
        assert allowed <= budget
        for t in opt.ask(5):
            assert t.predicted_cost <= allowed
            assert latency_proxy(t.arch) == t.predicted_cost
            m = measured_latency(t.arch)
            t = opt.tell(t, float(t.arch.num_layers), cost=m)
            n_infeasible += t.status == 'infeasible'
    assert n_infeasible > 0  # the surrogate's measurements exceed the proxy sometimes
    assert opt.cost_scale > 1.0 and opt.effective_budget < budget
    assert all(t.status in ('complete', 'infeasible') for t in opt.trials)
    assert opt.best.measured_cost <= budget


@pytest.mark.slow
def test_lamcts_constraint_over_a_thousand_proposals():
    space = GPUNetSpace()
    opt = LaMCTSBO(space, seed=1, minimize=False, constraint_fn=latency_proxy, budget=0.7, **FAST)
    for _ in range(125):
        for t in opt.ask(8):
            assert latency_proxy(t.arch) <= 0.7
            opt.tell(t, float(t.arch.num_layers))


def test_benchmark_cli_json_table_and_plot(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'benchmark_search',
        os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'benchmark_search.py'),
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out, png = tmp_path / 'r.json', tmp_path / 'r.png'
    argv = '--func levy --dims 2 --budget 12 --batch 3 --seeds 2 --methods random,evolution'
    assert cli.main(argv.split() + ['--json', str(out), '--plot', str(png), '--quiet']) == 0
    res = json.loads(out.read_text())
    assert res['config']['budget'] == 12 and res['config']['batch'] == 3
    for m in ('random', 'evolution'):
        assert len(res[m]['best']) == 2 and len(res[m]['wall_s']) == 2
        assert all(len(c) == 12 for c in res[m]['curves'])
    assert png.stat().st_size > 1000
    table = capsys.readouterr().out
    assert 'best @12 (median, IQR)' in table and 'evolution' in table
    with pytest.raises(ValueError, match='methods'):
        cli.main('--func levy --dims 2 --budget 4 --seeds 1 --methods hill'.split())


def test_benchmark_anytime_merge_label_and_skipped(tmp_path, capsys, monkeypatch):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        'benchmark_search',
        os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'benchmark_search.py'),
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / 'r.json'
    base = '--func levy --dims 2 --budget 12 --seeds 3 --report-at 4,12 --quiet --json'.split()
    assert cli.main(base + [str(out), '--methods', 'random', '--workers', '2']) == 0
    res = json.loads(out.read_text())
    at = res['random']['at']
    assert set(at) == {'4', '12'}
    for b in (4, 12):  # the summary is of the curves, after b trials
        vals = [c[b - 1] for c in res['random']['curves']]
        assert at[str(b)]['values'] == vals and at[str(b)]['median'] == float(np.median(vals))
    assert at['12']['median'] <= at['4']['median']  # best so far never gets worse
    # a second method added to the same file, renamed; a method budget leaves "not run"
    monkeypatch.setitem(sys.modules, 'nevergrad', None)  # as if not installed
    argv = base + [
        str(out),
        '--merge',
        '--methods',
        'evolution,ngopt',
        '--label',
        'evolution=evo-small',
        '--options',
        '{"evolution": {"population_size": 6}}',
        '--method-budgets',
        'evolution=6',
    ]
    assert cli.main(argv) == 0
    res = json.loads(out.read_text())
    assert res['config']['methods'] == ['random', 'evo-small']
    assert res['config']['labels'] == {
        'evo-small': dict(method='evolution', options={'population_size': 6})
    }
    assert res['random']['at'] == at  # untouched by the merge
    assert res['evo-small']['at']['12']['median'] is None
    assert all(len(c) == 6 for c in res['evo-small']['curves'])
    assert 'ngopt skipped: needs nevergrad' in res['skipped']['ngopt']
    table = capsys.readouterr().out
    assert 'not run' in table and 'ngopt skipped' in table
    with pytest.raises(ValueError, match='configs differ'):
        cli.main(base[:-1] + ['--seeds', '2', '--json', str(out), '--merge', '--methods', 'random'])


def test_add_trial_warm_start_skips_the_design_and_guards_state():
    space = GPUNetSpace('classification')
    rng = np.random.default_rng(0)
    known = [space.decode(x) for x in space.sample(12, rng)]
    opt = LaMCTSBO(space, seed=0, **{**FAST, 'n_init': 10})
    for i, arch in enumerate(known):
        t = opt.add_trial(arch, float(i), cost=latency_proxy(arch))
        assert t.status == 'complete' and t.ask_index == -1
    snapshot = json.dumps(opt.state_dict())
    with pytest.raises(ValueError, match='already trial 3'):
        opt.add_trial(known[3], 1.0)
    fresh = space.decode(space.sample(1, np.random.default_rng(99))[0])
    with pytest.raises(ValueError, match='not a number'):
        opt.add_trial(fresh, 'high')
    with pytest.raises(ValueError, match='value is None'):
        opt.add_trial(fresh)
    assert json.dumps(opt.state_dict()) == snapshot
    # 12 known results >= n_init: no random design; only the priors are tried first (the
    # tiers and the best known trials, projected: with no budget the known ones are not new
    # and drop out), then the model
    (t,) = opt.ask(1)
    from gpunet_mm.nas.lamcts import tier_priors

    tiers = {space.key(x) for x in tier_priors(space)}
    assert {space.key(np.asarray(x)) for x in opt._design} == tiers
    assert t.key in tiers
    assert t.key not in {opt.trials[i].key for i in range(12)}
    opt._design_pos = len(opt._design)  # skip the other priors: model-based from here
    (t2,) = opt.ask(1)
    assert opt.last_leaf_depth >= 1 and t2.key not in tiers
    # state with added trials round-trips
    clone = LaMCTSBO(space, seed=0, **{**FAST, 'n_init': 10})
    clone.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    assert [a.key for a in clone.ask(2)] == [a.key for a in opt.ask(2)]


def test_time_proposals_reports_asks_after_many_observations():
    from gpunet_mm.nas.benchmark import time_proposals
    from gpunet_mm.nas.objectives import make_problem

    r = time_proposals(
        make_problem('ackley', 4), 'lamcts', n_obs=60, batch=2, repeats=2, options=FAST
    )
    assert r['n_obs'] == 60 and len(r['seconds']) == 2
    assert 0 < r['median_s'] <= r['max_s']


def test_optuna_gp_peer_with_constraint():
    pytest.importorskip('optuna')
    pytest.importorskip('torch')
    space = GPUNetSpace()
    opt = build_optimizer(
        dict(type='gp', n_startup_trials=3),
        space,
        seed=0,
        minimize=False,
        constraint_fn=latency_proxy,
        budget=0.9,
    )
    run(opt, lambda a: float(a.num_layers), 5, cost=measured_latency)
    assert len({t.key for t in opt.trials}) == 5
    assert all(t.predicted_cost <= 0.9 for t in opt.trials)
    # the constraint reaches Optuna: cost - budget on every finished trial
    study = opt._study()
    cons = [ft.system_attrs['constraints'][0] for ft in study.trials]
    assert cons == pytest.approx([t.measured_cost - 0.9 for t in opt.trials])


def test_nevergrad_peer_discrete_and_resume(tmp_path):
    """NGOpt on a discrete space (on a continuous box, nevergrad 1.0.12's meta-model breaks
    under numpy 2: ``float()`` of a 1-element array, inside nevergrad)."""
    pytest.importorskip('nevergrad')
    space, f = toy_discrete()
    opt = build_optimizer('ngopt', space, seed=0)
    run(opt, f, 12, batch=3)
    assert len({t.key for t in opt.trials}) == 12
    path = str(tmp_path / 's.json')
    opt.save(path)
    resumed = build_optimizer('ngopt', space, seed=0).load(path)
    run(resumed, f, 18, batch=3)  # replayed, then continues
    assert len({t.key for t in resumed.trials}) == 18
