"""The controller with fakes of everything around it (no Ray, no training)."""

import io
import json
import os.path as osp

import pytest

from gpunet_mm.search import LocalExecutor, SearchError, SearchJournal
from gpunet_mm.search.api import run_search
from gpunet_mm.search.journal import JournalError

from .conftest import FakeLatency, surrogate_trainer
from .conftest import run_simulated as _run


def test_search_trains_the_requested_trials_and_tells_every_budget(sim_cfg, tmp_path):
    log = []
    s = _run(sim_cfg, tmp_path, log)
    j = SearchJournal.open(str(tmp_path))
    trained = [t for t in j.trials() if t.attempts > 0]
    assert len(trained) == 10  # nas.num_trials, the reference included
    assert sorted(i for i, _ in log) == sorted(t.id for t in trained)  # each trained once
    assert any(t.origin == 'reference:GPUNet-0' and t.status == 'complete' for t in trained)
    # proposals come from both budgets' optimisers (the less covered band goes first)
    assert {'optimizer:0', 'optimizer:1'} <= {t.origin for t in trained}
    budgets = j.meta('budgets')
    assert budgets == [1.0, 1.6]
    # one pool, two budgets: the best of each budget is within it and is the pool's best
    for b in budgets:
        w = s['best_per_budget'][f'{b:g}']
        ok = [t for t in trained if t.status == 'complete' and t.latency_ms <= b]
        assert w['metric'] == max(t.metric for t in ok)
        assert w['latency_ms'] <= b
    # every optimiser learnt every finished pool trial (its own, or added)
    for b in range(2):
        learnt = {r['pool'] for r in j.load_optimizer(b)['trials'] if r['tell_index'] is not None}
        for t in j.trials(('complete',)):
            if t.origin.startswith('reference'):
                continue
            assert t.arch_hash in learnt


def test_failures_are_retried_then_recorded(sim_cfg, tmp_path):
    calls = {}

    def fail(task):
        calls[task.trial_id] = calls.get(task.trial_id, 0) + 1
        if task.trial_id == 2:
            raise RuntimeError('boom: worker raised')
        if task.trial_id == 3 and task.attempt == 1:
            raise FloatingPointError('loss is nan at iteration 3')

    sim_cfg['nas']['num_trials'] = 5
    _run(sim_cfg, tmp_path, fail=fail)
    j = SearchJournal.open(str(tmp_path))
    t2, t3 = j.trial(2), j.trial(3)
    assert t2.status == 'failed' and t2.attempts == 2 and 'boom' in t2.error
    assert [a['outcome'] for a in j.attempts(2)] == ['error', 'error']
    assert t3.status == 'complete' and [a['outcome'] for a in j.attempts(3)] == ['nan', 'ok']
    # the search went on: five trainings were started in total
    assert len([t for t in j.trials() if t.attempts > 0]) == 5


def test_nan_metric_is_a_failure_not_a_result(sim_cfg, tmp_path):
    sim_cfg['nas']['num_trials'] = 3
    sim_cfg['nas']['max_attempts'] = 1
    ex = LocalExecutor(lambda task: {'metric': float('nan')}, num_workers=1)
    run_search(
        sim_cfg,
        str(tmp_path),
        simulate=True,
        executor=ex,
        latency=FakeLatency(),
        write_reports=False,
    )
    j = SearchJournal.open(str(tmp_path))
    assert {t.status for t in j.trials() if t.attempts} == {'failed'}
    assert all('nan' in t.error for t in j.trials(('failed',)))


def test_refuses_to_mix_searches_and_names_changed_keys(sim_cfg, tmp_path):
    _run(sim_cfg, tmp_path)
    with pytest.raises(JournalError, match='--resume'):
        _run(sim_cfg, tmp_path)
    sim_cfg['search_optimizer']['cp'] = 0.5
    with pytest.raises(JournalError, match='search_optimizer.cp'):
        _run(sim_cfg, tmp_path, resume=True)
    with pytest.raises(JournalError, match='nothing to resume'):
        _run(sim_cfg, tmp_path / 'empty', resume=True)


def test_budget_below_the_fastest_architecture_is_refused(sim_cfg, tmp_path):
    sim_cfg['nas']['simulate']['budgets'] = [0.001]
    with pytest.raises(SearchError, match='below the fastest architecture'):
        _run(sim_cfg, tmp_path)


def test_resume_continues_exactly_where_an_uninterrupted_search_would_be(sim_cfg, tmp_path):
    """Stop after 6 trainings, resume to 10: same trials, same proposals as one run to 10."""
    full_log = []
    _run(sim_cfg, tmp_path / 'full', full_log, workers=1)
    part_log = []
    cfg6 = json.loads(json.dumps(sim_cfg))
    cfg6['nas']['num_trials'] = 6
    _run(cfg6, tmp_path / 'part', part_log, workers=1)
    _run(sim_cfg, tmp_path / 'part', part_log, workers=1, resume=True)
    a = SearchJournal.open(str(tmp_path / 'full')).trials()
    b = SearchJournal.open(str(tmp_path / 'part')).trials()
    assert [t.arch_hash for t in a] == [t.arch_hash for t in b]
    assert [t.metric for t in a] == [t.metric for t in b]
    assert sorted(i for i, _ in part_log) == sorted(set(i for i, _ in part_log))  # no re-train


def test_warm_start_remeasures_latency_only(sim_cfg, tmp_path):
    _run(sim_cfg, tmp_path / 'a')
    done_a = {
        t.arch_hash: t.metric for t in SearchJournal.open(str(tmp_path / 'a')).trials(('complete',))
    }
    log = []
    lat = FakeLatency(factor=1.3)  # a slower target
    sim_cfg['nas']['num_trials'] = 3
    ex = LocalExecutor(surrogate_trainer(log), num_workers=2)
    run_search(
        sim_cfg,
        str(tmp_path / 'b'),
        simulate=True,
        executor=ex,
        latency=lat,
        warm_start=str(tmp_path / 'a'),
        write_reports=False,
    )
    j = SearchJournal.open(str(tmp_path / 'b'))
    warm = [t for t in j.trials() if t.origin.startswith('warm')]
    assert {t.arch_hash for t in warm} | {
        t.arch_hash for t in j.trials() if t.origin.startswith('reference')
    } >= set(done_a) - {t.arch_hash for t in j.trials() if t.origin.startswith('reference')}
    for t in warm:
        assert t.attempts == 0 and t.status == 'complete'
        assert t.metric == done_a[t.arch_hash]
        assert t.arch_hash in lat.measured  # latency re-measured on the new target
    trained_ids = {i for i, _ in log}
    assert not trained_ids & {t.id for t in warm}
    # the optimisers start from the warm trials
    st = j.load_optimizer(0)
    assert sum(1 for t in st['trials'] if t['ask_index'] == -1) >= len(warm)


def test_reports_are_written(sim_cfg, tmp_path):
    _run(sim_cfg, tmp_path, write_reports=True)
    for name in ('trials.csv', 'results.json', 'summary.json', 'pareto.png'):
        assert osp.getsize(tmp_path / name) > 0
    res = json.loads((tmp_path / 'results.json').read_text())
    assert res['format'] == 1 and len(res['winners']) == 2
    rows = (tmp_path / 'trials.csv').read_text().splitlines()
    assert rows[0].startswith('trial_id,arch_hash,origin,status,attempts')
    assert len(rows) - 1 == len(SearchJournal.open(str(tmp_path)).trials())


def test_progress_lines_say_what_happened_without_flooding(sim_cfg, tmp_path):
    import io

    from gpunet_mm.search.progress import SearchProgress

    out = io.StringIO()
    progress = SearchProgress(10, live=False, stream=out)
    _run(sim_cfg, tmp_path, on_update=progress)
    lines = out.getvalue().splitlines()
    per_trial = [ln for ln in lines if ln.startswith('[search] trial ')]
    status = [ln for ln in lines if ln.startswith('[search] ') and ' trained, ' in ln]
    assert len(per_trial) == 10  # one line per finished training
    assert 1 <= len(status) <= 3  # the first, maybe one more, and the final state
    assert status[-1].startswith('[search] 10/10 trained, 0 running, 0 failed')
    assert 'best 1ms: ' in status[-1] and '1.6ms: ' in status[-1]


def test_pareto_plot_with_degenerate_metrics(tmp_path):
    """All metrics equal (an untrained tiny run gives mAP 0 everywhere): still a figure."""
    from gpunet_mm.search.journal import PoolTrial
    from gpunet_mm.search.report import plot_pareto

    trials = [
        PoolTrial(i, f'h{i}', {}, 'optimizer:0', 0, 'complete', 1, None, 5.0 + i, None, 0.0)
        for i in range(3)
    ]
    trials.append(
        PoolTrial(3, 'h3', {}, 'reference:GPUNet-0', None, 'complete', 1, None, 6.5, None, 0.0)
    )
    path = str(tmp_path / 'p.png')
    plot_pareto(trials, [6.0, 7.5], {6.0: trials[0], 7.5: trials[3]}, 'coco/bbox_mAP', path)
    assert (tmp_path / 'p.png').stat().st_size > 10_000


def test_progress_eta_follows_the_compute_budget_when_it_ends_the_search_first():
    """With promotions most candidates stop at a short rung, so ``num_trials`` is far away:
    the ETA is whichever limit the rate so far reaches first."""
    from types import SimpleNamespace

    from gpunet_mm.search.progress import SearchProgress

    def ctrl(spent, budget):
        journal = SimpleNamespace(
            counts=lambda: dict(running=2, failed=0, infeasible=0),
            columns=lambda cols, statuses: [(1,)] * 2,  # 2 candidates trained
        )
        return SimpleNamespace(
            journal=journal,
            budgets=[1.0],
            best=lambda b: None,
            compute=lambda: (spent, 0.0),
            opts=SimpleNamespace(compute_budget=budget),
        )

    p = SearchProgress(20, live=False, stream=io.StringIO())
    p.t0 -= 60.0  # one minute in
    by_trials = p._state(ctrl(12.0, None))['eta']  # 2 of 20 trials in 60 s: 18 more
    assert by_trials == pytest.approx(540.0, rel=0.02)
    # 12 of 48 epochs in 60 s: 36 more epochs, 180 s, sooner than 18 more trials
    assert p._state(ctrl(12.0, 48.0))['eta'] == pytest.approx(180.0, rel=0.02)
    # a compute budget further away than the trial count leaves the trial count's ETA
    assert p._state(ctrl(1.0, 480.0))['eta'] == pytest.approx(540.0, rel=0.02)
    assert p._state(ctrl(48.0, 48.0))['eta'] == pytest.approx(540.0, rel=0.02)  # spent
