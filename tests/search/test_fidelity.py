"""Multi-fidelity search: rungs, ASHA promotions, compute accounting, the optimisers' rung,
simulated learning curves, and the bad-input checks of the new keys."""

import copy
import csv
import io
import json

import numpy as np
import pytest

from gpunet_mm.nas.objectives import surrogate_accuracy, surrogate_curve
from gpunet_mm.search import SearchJournal
from gpunet_mm.search.api import run_search
from gpunet_mm.search.fidelity import Rungs, make_rungs
from gpunet_mm.search.report import final_line
from gpunet_mm.search.trainer import SearchConfigError

from .conftest import run_simulated, rung_trainer, surrogate_trainer


def _fid_cfg(sim_cfg, **fid):
    sim_cfg['nas'].update(
        num_trials=12,
        fidelity=dict(dict(min_epochs=1, eta=3, max_epochs=9, min_observations=4), **fid),
    )
    return sim_cfg


def _run(cfg, work_dir, trainer, workers=2, **kw):
    return run_simulated(cfg, work_dir, workers=workers, trainer=trainer, **kw)


# ---------------------------------------------------------------------- rungs and rules
@pytest.mark.parametrize(
    'fid, full, epochs',
    [
        (dict(min_epochs=1, eta=3), 9, (1, 3, 9)),
        (dict(min_epochs=1, eta=3), 8, (1, 3, 8)),
        (dict(min_epochs=2, eta=3), 8, (2, 8)),  # 6 -> 8 adds too little: merged
        (dict(min_epochs=1, eta=2), 4, (1, 2, 4)),
    ],
)
def test_rungs_grow_by_eta_up_to_the_full_schedule(fid, full, epochs):
    r = make_rungs(fid, full)
    assert r.epochs == epochs
    assert sum(r.cost(k) for k in range(len(epochs))) == full  # continuations add, never redo


def test_promotion_is_the_top_third_of_each_rung_so_far_per_budget_with_ties():
    r = Rungs((1, 3, 9), 3, 4)
    res = [
        dict(trial_id=1, rung=0, metric=0.50, latency_ms=1.5),
        dict(trial_id=2, rung=0, metric=0.40, latency_ms=0.9),
        dict(trial_id=3, rung=0, metric=0.30, latency_ms=0.8),
        dict(trial_id=4, rung=0, metric=0.20, latency_ms=0.7),
    ]
    # asynchronous: four results are enough to promote one (no waiting for the rung)
    assert r.promotable(res, set(), [2.0]) == [(1, 1)]
    # per budget: the best within 1.0 ms is promoted too, though not the best overall
    assert r.promotable(res, set(), [1.0, 2.0]) == [(1, 1), (2, 1)]
    assert r.promotable(res, {(1, 1)}, [2.0]) == []  # decided once
    # ties: the same metric goes to the faster, then the older trial
    tie = [dict(trial_id=i, rung=0, metric=0.5, latency_ms=1.0) for i in (7, 5, 6)]
    assert r.promotable(tie, set(), [2.0]) == [(5, 1)]
    tie[2]['latency_ms'] = 0.5
    assert r.promotable(tie, set(), [2.0]) == [(6, 1)]
    # higher rungs first; the last rung is never promoted; references always climb
    res += [dict(trial_id=i, rung=1, metric=0.1 * i, latency_ms=1.0) for i in (8, 9, 4)]
    res += [dict(trial_id=10, rung=2, metric=0.9, latency_ms=1.0)]
    res += [dict(trial_id=11, rung=0, metric=0.0, latency_ms=9.0)]
    assert r.promotable(res, set(), [2.0], always={11}) == [(9, 2), (1, 1), (11, 1)]


def test_the_final_stretch_promotes_every_result_below_the_top_budgets_taking_turns():
    r = Rungs((1, 3, 9), 3, 4)
    res = [dict(trial_id=i, rung=0, metric=0.1 * i, latency_ms=0.5 + 0.2 * i) for i in (1, 2, 3)]
    res += [dict(trial_id=i, rung=1, metric=0.1 * i, latency_ms=1.0) for i in (4, 5)]
    res += [dict(trial_id=6, rung=2, metric=0.9, latency_ms=1.0)]
    assert r.promotable(res, set(), [2.0]) == [(3, 1)]  # ASHA: floor(n / eta) per rung
    # the stretch: every result below the top, higher rungs first, best first
    assert r.promotable(res, set(), [2.0], stretch=True) == [(5, 2), (4, 2), (3, 1), (2, 1), (1, 1)]
    # two budgets take turns: each one's best, then each one's second (1.0 ms holds 1 and 2;
    # by metric alone 7 would go before 2)
    two = res[:3] + [dict(trial_id=7, rung=0, metric=0.25, latency_ms=1.5)]
    assert r.promotable(two, set(), [1.0, 2.0], stretch=True) == [(3, 1), (2, 1), (7, 1), (1, 1)]


def test_the_optimiser_models_the_rung_it_is_shown_and_keeps_the_others_known():
    from gpunet_mm.nas import build_optimizer, build_space

    space = build_space(dict(type='GPUNetSpace', variant='detection', resolutions=[320]))
    opt = build_optimizer(dict(type='RandomSearch', seed=0), space, minimize=False)
    trials = opt.ask(4)
    for i, t in enumerate(trials):
        opt.tell(t, float(i))  # first-rung values
    X, y = opt.observations()
    assert sorted(-y) == [0.0, 1.0, 2.0, 3.0]
    opt.store.set_modelled_values({trials[1].key: 10.0, trials[3].key: 30.0})  # rung 1 holds two
    X, y = opt.observations()
    assert sorted(-y) == [10.0, 30.0] and len(X) == 2
    assert not opt.is_new(np.asarray(trials[0].x))  # still known: never proposed again
    opt.store.set_modelled_values(None)
    assert len(opt.observations()[1]) == 4


# ---------------------------------------------------------------------- the search
def test_rungs_promote_continue_from_checkpoints_and_account_compute(sim_cfg, tmp_path):
    log = []
    s = _run(_fid_cfg(sim_cfg), tmp_path, rung_trainer(log))
    j = SearchJournal.open(str(tmp_path))
    res = j.rung_results()
    # every continuation started where its previous rung ended, from that rung's checkpoint
    by = {(r['trial_id'], r['rung']): r for r in res}
    for tid, _attempt, start, end in log:
        k = (1, 3, 9).index(end)
        assert start == (0, 1, 3)[k]
        if k:
            assert by[(tid, k - 1)]['checkpoint'] == f'/ckpt/trial_{tid}/epoch_{start}.pth'
    # nothing trained twice: each (trial, rung) once
    assert len({(t, e) for t, _, _, e in log}) == len(log)
    occ = s['fidelity']['rung_occupancy']
    assert occ[0] == 12 and 0 < occ[2] <= occ[1] < occ[0]
    assert s['fidelity']['promotions'] == occ[1] + occ[2]
    # compute: epochs each attempt added, summed
    assert s['compute_epochs'] == sum(e - st for _, _, st, e in log)
    assert s['compute_epochs'] < 12 * 9
    # the winner is at the highest rung reached (a 1-epoch number never beats a full one)
    top = j.top_rungs()
    for w in s['best_per_budget'].values():
        assert w is None or top[w['trial_id']] == max(top.values())
    # the reference tier climbs every rung: the comparison with it is at the same schedule
    ref = next(t for t in j.trials() if t.origin.startswith('reference'))
    assert top[ref.id] == 2
    # the promotion decisions are in the journal before their dispatch
    kinds = [(e['kind'], e['trial_id']) for e in j.events() if e['kind'] in ('promote', 'dispatch')]
    for tid, _rung in j.promotions():
        i = kinds.index(('promote', tid))
        assert ('dispatch', tid) in kinds[i + 1 :]


def test_trials_csv_has_the_epochs_and_the_metric_at_each_rung(sim_cfg, tmp_path):
    _run(_fid_cfg(sim_cfg), tmp_path, rung_trainer(), write_reports=True)
    rows = list(csv.DictReader(io.StringIO((tmp_path / 'trials.csv').read_text())))
    j = SearchJournal.open(str(tmp_path))
    res = {(r['trial_id'], r['epochs']): r['metric'] for r in j.rung_results()}
    assert {'epochs', 'metric_1ep', 'metric_3ep', 'metric_9ep'} <= set(rows[0])
    for row in rows:
        tid = int(row['trial_id'])
        for e in (1, 3, 9):
            cell = row[f'metric_{e}ep']
            assert (cell == '') == ((tid, e) not in res)
            if cell:
                assert float(cell) == pytest.approx(res[(tid, e)])
    full = [r for r in rows if r['epochs'] == '9']
    assert full and all(r['metric_9ep'] == r['metric'] for r in full)


def test_compute_budget_stops_the_search(sim_cfg, tmp_path):
    cfg = _fid_cfg(sim_cfg)
    cfg['nas'].update(num_trials=100, compute_budget=30)
    log = []
    s = _run(cfg, tmp_path, rung_trainer(log))
    assert s['stop_reason'] == 'compute budget spent'
    assert s['compute_epochs'] == sum(e - st for _, _, st, e in log) <= 30
    assert s['compute_epochs'] >= 30 - 6  # stopped only when one more rung did not fit
    assert s['compute_budget'] == 30


def test_compute_budget_without_rungs_counts_full_trainings(sim_cfg, tmp_path):
    sim_cfg['nas'].update(num_trials=100, compute_budget=40)
    sim_cfg['train_cfg'] = dict(max_epochs=8)
    payloads = []
    base = surrogate_trainer()

    def train(task):
        payloads.append(task.payload)
        return base(task)

    s = _run(sim_cfg, tmp_path, train)
    assert s['compute_epochs'] == 8 * len(payloads) == 40
    # without nas.fidelity the workers get what they always got: no rung keys
    assert not any({'epochs', 'resume_from'} & set(p) for p in payloads)


def test_the_optimisers_learn_from_the_highest_rung_with_enough_results(
    sim_cfg, tmp_path, monkeypatch
):
    from gpunet_mm.search.trial_store import JournalTrialStore

    seen = []
    refresh = JournalTrialStore.refresh

    def recording_refresh(self):  # what the store offers the optimiser at each ask
        refresh(self)
        X, y = self.opt.observations()
        offered = self.modelled_values()
        seen.append((None if offered is None else dict(offered), len(y)))

    monkeypatch.setattr(JournalTrialStore, 'refresh', recording_refresh)
    cfg = _fid_cfg(sim_cfg, min_observations=2, model='rung')  # BOHB's rule, not the default
    cfg['nas'].update(num_trials=16, ask_batch=1)
    s = _run(cfg, tmp_path, rung_trainer(), workers=1)
    j = SearchJournal.open(str(tmp_path))
    assert seen[0][0] is None  # nothing above the first rung yet: the told values
    shown = [v for v, _ in seen if v]
    assert shown, 'the optimisers never learnt from a higher rung'
    # what they were shown are exactly the values of one rung above the first
    res = j.rung_results()
    upper = {r['metric'] for r in res if r['rung'] > 0}
    for v in shown:
        assert set(v.values()) <= upper and len(v) >= 2
    assert s['fidelity']['model_rung'] >= 1


def test_the_final_stretch_starts_nothing_that_could_not_reach_the_top(sim_cfg, tmp_path):
    """With 1/3/9 rungs a new candidate needs 9 epochs to reach the top: once less is
    left, nothing new starts and the rest goes to promotions. Plain ASHA
    (``final_stretch=False``) starts first rungs to the end."""

    def starts_with_left(final_stretch, wd):
        cfg = _fid_cfg(copy.deepcopy(sim_cfg), final_stretch=final_stretch)
        cfg['nas'].update(num_trials=100, compute_budget=30, references=[])
        log = []
        s = _run(cfg, wd, rung_trainer(log), workers=1)
        spent, out = 0, []
        for _tid, _a, start, end in log:  # one worker: the attempts in dispatch order
            if start == 0:
                out.append(30 - spent)
            spent += end - start
        assert spent == s['compute_epochs'] <= 30
        return out, s

    left, s = starts_with_left(True, tmp_path / 'stretch')
    assert min(left) >= 9 and s['stop_reason'] == 'compute budget spent'
    left_asha, s_asha = starts_with_left(False, tmp_path / 'asha')
    assert min(left_asha) < 9  # ASHA started candidates that could never reach the top
    top, top_asha = s['fidelity']['rung_occupancy'][-1], s_asha['fidelity']['rung_occupancy'][-1]
    assert top >= top_asha


def test_the_references_reach_the_top_rung_on_compute_kept_for_them(sim_cfg, tmp_path, monkeypatch):
    """A tight compute budget on 8 virtual workers: the reference tier still climbs every
    rung (its epochs are kept from the start; new candidates and other promotions use the
    rest). Without that reserve the same search leaves it at rung 1, and the last line
    says so (under ASHA's rule, whose promotions fill the budget before the reference's
    last rung; the predicted rule promotes fewer and may leave it room by chance)."""
    from gpunet_mm.search.controller import SearchController

    cfg = _fid_cfg(sim_cfg, promote='rung')
    cfg['nas'].update(num_trials=100, compute_budget=24)
    # controller_s: a controller step costs fixed virtual time, so the order in which the
    # 8 workers finish (and with it which promotions fill the budget) is not the host's load
    cfg['nas']['simulate'].update(num_workers=8, duration_sigma=0.0, controller_s=0.0)
    s = run_search(cfg, str(tmp_path / 'kept'), simulate=True, write_reports=False)
    j = SearchJournal.open(str(tmp_path / 'kept'))
    ref = next(t for t in j.trials() if t.origin.startswith('reference'))
    assert j.top_rungs()[ref.id] == 2 and s['references']['GPUNet-0']['epochs'] == 9
    assert s['compute_epochs'] <= 24 and s['stop_reason'] == 'compute budget spent'
    assert s['fidelity']['rung_occupancy'][0] >= 4  # the rest went to candidates
    assert 'not the full proxy schedule' not in final_line(s)

    monkeypatch.setattr(SearchController, '_reserved', lambda self: 0.0)
    s = run_search(cfg, str(tmp_path / 'not_kept'), simulate=True, write_reports=False)
    short = s['references']['GPUNet-0']['epochs']
    assert short < 9
    assert f'after {short} of 9 epochs (not the full proxy schedule)' in final_line(s)


def test_a_failed_promotion_keeps_the_rungs_the_trial_finished(sim_cfg, tmp_path):
    def fail(task):
        if task.payload['epochs'] == 3 and task.trial_id == 1:  # the reference's rung 1
            raise RuntimeError('boom at rung 1')

    cfg = _fid_cfg(sim_cfg)
    _run(cfg, tmp_path, rung_trainer(fail=fail))
    j = SearchJournal.open(str(tmp_path))
    t = j.trial(1)
    assert t.status == 'complete' and 'boom' in t.error
    assert [r['rung'] for r in j.rung_results(1)] == [0]
    assert [a['outcome'] for a in j.attempts(1)] == ['ok', 'error', 'error']
    assert any(e['kind'] == 'promotion_failed' for e in j.events())


# ---------------------------------------------------------------------- simulate
def test_default_simulated_curves_cross_and_end_at_the_surrogate():
    from gpunet_mm.nas import build_space

    space = build_space(dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384]))
    archs = [space.decode(x) for x in space.sample(40, np.random.default_rng(0))]
    for a in archs[:5]:
        assert surrogate_curve(a, 8, seed=3) == surrogate_accuracy(a)
        assert surrogate_curve(a, 1, seed=3) < surrogate_curve(a, 3, seed=3) < surrogate_accuracy(a)
    early = [surrogate_curve(a, 1, seed=0) for a in archs]
    final = [surrogate_accuracy(a) for a in archs]
    flips = sum(
        (early[i] - early[k]) * (final[i] - final[k]) < 0
        for i in range(len(archs))
        for k in range(i)
    )
    assert flips > 0.05 * len(archs) * (len(archs) - 1) / 2  # curves cross
    from scipy.stats import kendalltau

    assert kendalltau(early, final)[0] > 0.3  # but a short rung still ranks


def test_simulate_with_a_user_learning_curve_and_durations_by_epochs(sim_cfg, tmp_path):
    from tests.search import curve_objective

    curve_objective.CALLS.clear()
    cfg = _fid_cfg(sim_cfg)
    cfg['nas']['simulate'].update(
        objective='tests.search.curve_objective:curve', duration_sigma=0.0, mean_trial_s=90.0
    )
    s = run_search(cfg, str(tmp_path), simulate=True, write_reports=False)
    epochs = {e for e, _ in curve_objective.CALLS}
    assert epochs == {1.0, 3.0, 9.0}  # each rung's end
    j = SearchJournal.open(str(tmp_path))
    for r in j.rung_results():
        width = j.trial(r['trial_id']).arch['rows'][-1]['out_channels']
        assert r['metric'] == pytest.approx(width * (1 - 0.5 ** r['epochs']))
    # the virtual duration is the full schedule's share: 10 s per epoch here
    busy = s['utilisation_with_drain'] * s['num_workers'] * s['virtual_wall_s']
    assert busy == pytest.approx(10.0 * s['compute_epochs'])


def test_simulated_executor_durations_are_proportional_to_the_epochs_trained():
    from gpunet_mm.search.executor import TrialTask
    from gpunet_mm.search.simulate import SimulatedExecutor

    ex = SimulatedExecutor(
        lambda a, e, s: e, num_workers=3, mean_trial_s=90.0, duration_sigma=0.0, full_epochs=9
    )
    ex.submit(TrialTask(1, 1, {}, dict(epochs=1, resume_from=None)))
    ex.submit(TrialTask(2, 1, {}, dict(epochs=9, resume_from='sim://trial_2/epoch_3')))
    ex.submit(TrialTask(3, 1, {}, {}))  # no rung: the full schedule, no rung keys
    out = {o.trial_id: o for o in ex.poll(0) + ex.poll(0) + ex.poll(0)}
    assert out[1].busy_s == pytest.approx(10.0) and out[2].busy_s == pytest.approx(60.0)
    assert out[3].busy_s == pytest.approx(90.0)
    assert out[2].result['epochs_trained'] == 6 and out[2].result['metric'] == 9
    assert out[2].result['checkpoint'] == 'sim://trial_2/epoch_9'
    assert 'checkpoint' not in out[3].result


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    'nas, match',
    [
        (
            dict(fidelity=dict(min_epochs=1, eta=1)),
            r'nas.fidelity.eta: got 1; allowed: integers >= 2',
        ),
        (dict(fidelity=dict(min_epochs=9)), r'min_epochs: got 9 .* allowed: min_epochs <= 2'),
        (dict(fidelity=dict(min_epochs=1.5)), r'min_epochs: got 1.5'),
        (dict(fidelity=dict(eta=3)), r'min_epochs: missing'),
        (dict(fidelity=dict(min_epochs=1, rungs=3)), r'nas.fidelity.rungs: unknown key'),
        (
            dict(fidelity=dict(min_epochs=2), compute_budget=1),
            r'compute_budget: got 1 epochs, smaller than one rung \(2 epochs\)',
        ),
        (
            dict(fidelity=dict(min_epochs=1), compute_budget=12),
            r"compute_budget: got 12 epochs; the reference tier\(s\) \['GPUNet-0'\] train "
            r'every rung \(8 epochs each\) .* allowed: >= 16',
        ),
        (dict(compute_budget=-3), r'compute_budget: got -3'),
        (dict(final=dict(top_k=0)), r'nas.final.top_k: got 0; allowed: integers >= 1'),
        (
            dict(simulate=dict(objective='tests.search.no_such_module:f')),
            r"module 'tests.search.no_such_module' does not import",
        ),
        (
            dict(simulate=dict(objective='tests.search.curve_objective:wrong_signature')),
            r'cannot be called as function\(arch: dict, epochs: float, seed: int\)',
        ),
        (dict(simulate=dict(objective='tests.search.curve_objective')), r"allowed: 'package"),
    ],
)
def test_bad_multifidelity_settings_are_refused_before_anything_runs(nas, match, sim_cfg, tmp_path):
    sim_cfg['train_cfg'] = dict(max_epochs=8)
    for k, v in nas.items():
        if k == 'simulate':
            sim_cfg['nas']['simulate'].update(v)
        else:
            sim_cfg['nas'][k] = v
    with pytest.raises(SearchConfigError, match=match):
        _run(sim_cfg, tmp_path, rung_trainer())
    assert not (tmp_path / 'journal.sqlite').exists()


def test_a_base_config_that_cannot_resume_at_a_rung_is_refused():
    from gpunet_mm.search.fidelity import check_settings

    nas = dict(fidelity=dict(min_epochs=1, max_epochs=8))
    cfg = dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=100))
    with pytest.raises(SearchConfigError, match='IterBasedTrainLoop .iteration based.'):
        check_settings(cfg, nas, simulate=False)
    cfg = dict(train_cfg=dict(max_epochs=8), default_hooks=dict(checkpoint=None))
    with pytest.raises(SearchConfigError, match='disables checkpoints'):
        check_settings(cfg, nas, simulate=False)
    check_settings(dict(train_cfg=dict(max_epochs=8)), nas, simulate=False)  # fine


def test_summary_json_reports_compute(sim_cfg, tmp_path):
    _run(_fid_cfg(sim_cfg), tmp_path, rung_trainer())
    saved = json.loads((tmp_path / 'summary.json').read_text())
    assert saved['compute_epochs'] > 0 and saved['fidelity']['rung_epochs'] == [1, 3, 9]


# ---------------------------------------------------------------------- final retrain
def test_final_retrain_of_the_top_k_per_budget_reports_final_next_to_proxy(sim_cfg, tmp_path):
    finals = []
    rung = rung_trainer()

    def train(task):
        if task.payload.get('final'):
            finals.append((task.trial_id, task.attempt, dict(task.payload)))
            return {'metric': 100.0 + task.trial_id, 'epochs': 24}
        return rung(task)

    cfg = _fid_cfg(sim_cfg)
    cfg['nas']['final'] = dict(top_k=2, schedule=dict(train_cfg=dict(max_epochs=24)))
    s = _run(cfg, tmp_path, train, write_reports=True)
    j = SearchJournal.open(str(tmp_path))
    chosen = [f['trial_id'] for f in j.finals()]
    assert sorted(t for t, _, _ in finals) == sorted(chosen)  # each retrained once
    # the top 2 of each budget by the search's ranking (highest rung, then metric)
    top = j.top_rungs()
    for b in j.meta('budgets'):
        within = [t for t in j.trials(('complete',)) if t.latency_ms <= b]
        within.sort(key=lambda t: (-top[t.id], -t.metric, t.latency_ms, t.id))
        assert {t.id for t in within[:2]} <= set(chosen)
    assert len(chosen) <= 4
    for _, _, p in finals:  # from scratch on the full schedule: no rung keys
        assert p['final'] is True and p['final_schedule'] == dict(train_cfg=dict(max_epochs=24))
        assert 'epochs' not in p and 'resume_from' not in p
    fin = s['final']
    for b, w in fin['winners'].items():
        assert w['final_metric'] == 100.0 + w['trial_id']
        assert w['proxy_metric'] == j.trial(w['trial_id']).metric and w['proxy_epochs'] == 9
        assert w['latency_ms'] <= float(b)
    res = json.loads((tmp_path / 'results.json').read_text())
    assert res['final']['winners'] == json.loads(json.dumps(fin['winners']))
    for row in res['winners']:
        assert row['metric_kind'] == 'proxy' and row['final_metric'] == 100.0 + row['trial_id']
    line = final_line(s)
    w = fin['winners'][next(iter(fin['winners']))]
    assert f'| FINAL {next(iter(fin["winners"]))} ms: {w["arch_hash"]} (trial {w["trial_id"]})' in (
        line
    )
    assert 'on the full schedule (proxy ' in line and 'after 9 epochs' in line


def test_final_retrain_later_with_dash_dash_final(tmp_path):
    import os.path as osp

    from .conftest import nas_search_tool, searched_for_final

    cli = nas_search_tool()
    # the search, then the final retrain from the work_dir alone, as a user runs it later
    wd = str(tmp_path / 'wd')
    searched_for_final(wd)
    first = json.loads(open(osp.join(wd, 'summary.json')).read())
    assert 'final' not in first
    assert cli.main(['--final', wd, '--no-progress', '--cfg-options', 'nas.final.top_k=1']) == 0
    s = json.loads(open(osp.join(wd, 'summary.json')).read())
    assert s['trials_by_status'] == first['trials_by_status']  # nothing searched again
    runs = s['final']['runs']
    assert 1 <= len(runs) <= 2 and all(r['status'] == 'complete' for r in runs)
    assert s['final']['top_k'] == 1
    # the simulated final retrain is another run of the learning curve, at its end
    for r in runs:
        assert r['final_metric'] == pytest.approx(
            surrogate_curve(SearchJournal.open(wd).trial(r['trial_id']).arch, 9), abs=1e-9
        )


def test_progress_line_shows_rung_occupancy_and_compute(sim_cfg, tmp_path):
    from gpunet_mm.search.progress import SearchProgress

    out = io.StringIO()
    cfg = _fid_cfg(sim_cfg)
    cfg['nas']['compute_budget'] = 60
    s = _run(cfg, tmp_path, rung_trainer(), on_update=SearchProgress(12, live=False, stream=out))
    last = [ln for ln in out.getvalue().splitlines() if ' trained, ' in ln][-1]
    occ = '/'.join(str(n) for n in s['fidelity']['rung_occupancy'])
    assert f'| rungs 1/3/9 ep: {occ}, compute {s["compute_epochs"]:g}/60 epochs |' in last


def test_offset_model_shifts_the_lower_rungs_by_the_median_gain():
    r = Rungs((1, 3, 9), 3, 2, model='offset')
    by_rung = {0: {'a': 1.0, 'b': 2.0, 'c': 3.0, 'd': 0.5}, 1: {'b': 5.0, 'c': 7.0}}
    # gains from rung 0 to 1: b +3, c +4 -> median (upper) +4
    assert r.model_values(by_rung, 1) == {'b': 5.0, 'c': 7.0, 'a': 5.0, 'd': 4.5}
    assert Rungs((1, 3, 9), 3, 2).model_values(by_rung, 1) == {'b': 5.0, 'c': 7.0}


def test_the_final_retrain_trains_the_base_configs_full_schedule_by_default(sim_cfg, tmp_path):
    """The search config's schedule is the proxy; without ``nas.final.schedule`` the final
    retrain trains the base detector config's own (recorded when the config is loaded, so
    the journal keeps it for a later ``--final``); a given schedule wins."""
    import os.path as osp

    from gpunet_mm.models.tiers import get_tier
    from gpunet_mm.search.api import load_search_config
    from gpunet_mm.search.trainer import candidate_config

    from .conftest import ROOT

    demo = load_search_config(
        osp.join(ROOT, 'configs', 'nas', 'retinanet_gpunet-nas_fpn_demo_ort-cpu.py')
    )
    base = demo['_base_schedule']
    assert demo['train_cfg']['max_epochs'] == 8  # the proxy
    assert base['train_cfg']['max_epochs'] == 12  # configs/demo/retinanet_gpunet-0_fpn_demo.py
    arch = get_tier('GPUNet-0').to_dict()
    assert '_base_schedule' not in candidate_config(demo, arch)  # never in a trained config

    def finals_of(cfg, wd):
        seen, rung = [], rung_trainer()

        def train(task):
            if task.payload.get('final'):
                seen.append(task.payload['final_schedule'])
                return {'metric': 1.0, 'epochs': 12}
            return rung(task)

        _run(cfg, wd, train)
        return seen

    cfg = _fid_cfg(sim_cfg)
    cfg['_base_schedule'] = base
    cfg['nas']['final'] = dict(top_k=1)
    seen = finals_of(cfg, tmp_path / 'base')
    assert seen and all(s == base for s in seen)
    stored = SearchJournal.open(str(tmp_path / 'base')).config
    assert stored['_base_schedule'] == json.loads(json.dumps(base))  # for --final later
    cfg['nas']['final'] = dict(top_k=1, schedule=dict(train_cfg=dict(max_epochs=24)))
    seen = finals_of(cfg, tmp_path / 'given')
    assert seen and all(s == dict(train_cfg=dict(max_epochs=24)) for s in seen)


# ---------------------------------------------------------------------- promotion by prediction
def _climbers():
    """Six candidates that trained rungs 0 and 2: the top-rung value is the rung-0 value
    plus a climb that grows with latency (the bigger networks climb further)."""
    res = []
    for i, (v0, lat) in enumerate(
        [(0.50, 0.2), (0.30, 0.4), (0.45, 0.6), (0.35, 0.8), (0.50, 1.0), (0.30, 1.2)]
    ):
        res.append(dict(trial_id=i, rung=0, metric=v0, latency_ms=lat))
        res.append(dict(trial_id=i, rung=2, metric=v0 + 2.0 * lat, latency_ms=lat))
    return res


def test_promotion_by_the_predicted_top_rung_value_lets_the_slow_climber_up():
    from gpunet_mm.search.fidelity import predicted_values

    res = _climbers()
    # a fast starter that stays low (top 0.62) and a slow climber that ends high (top 2.3),
    # and 13 poor starts: rung 0 holds 21 results, 7 may climb, the six above already did
    res += [
        dict(trial_id=10, rung=0, metric=0.60, latency_ms=0.1),
        dict(trial_id=11, rung=0, metric=0.30, latency_ms=1.1),
    ]
    res += [dict(trial_id=100 + i, rung=0, metric=0.0, latency_ms=0.1) for i in range(13)]
    done = {(i, 1) for i in range(6)}
    pred = predicted_values(res, 0, min_pairs=6)
    assert pred[11] > pred[10]  # learnt from the six: the slow climber ends higher
    assert pred[11] == pytest.approx(2.5, abs=0.4) and pred[10] == pytest.approx(0.8, abs=0.4)
    # one place left (7 - 6 promoted): the slow climber takes it
    assert Rungs((1, 3, 9), 3, 6, promote='predicted').promotable(res, done, [2.0]) == [(11, 1)]
    # ASHA's rule ranks by the rung's own number (and counts no places): the fast starter first
    assert Rungs((1, 3, 9), 3, 6, promote='rung').promotable(res, done, [2.0]) == [
        (10, 1),
        (11, 1),
    ]


def test_promotion_falls_back_to_the_rung_value_until_enough_candidates_climbed():
    from gpunet_mm.search.fidelity import predicted_values

    res = _climbers()[:10]  # five pairs, fewer than min_pairs=6
    res += [
        dict(trial_id=10, rung=0, metric=0.60, latency_ms=0.1),
        dict(trial_id=11, rung=0, metric=0.30, latency_ms=1.1),
    ]
    assert predicted_values(res, 0, min_pairs=6) == {}
    asha = Rungs((1, 3, 9), 3, 6, promote='rung')
    r = Rungs((1, 3, 9), 3, 6, promote='predicted')
    # the whole order (the stretch: no quota) is the rung's own: the fast starter first
    order = asha.promotable(res, set(), [2.0], stretch=True)
    assert r.promotable(res, set(), [2.0], stretch=True) == order
    assert order.index((10, 1)) < order.index((11, 1))
    # the sixth pair: now the prediction orders them, the slow climber first
    res += [dict(x, trial_id=5) for x in _climbers()[10:]]
    order = r.promotable(res, set(), [2.0], stretch=True)
    assert order.index((11, 1)) < order.index((10, 1))
    # when the top rung has too few pairs, a lower rung above with enough is the target
    low = [x if x['rung'] == 0 else dict(x, rung=1) for x in _climbers()]
    low += [dict(x, rung=2) for x in low[:4] if x['rung'] == 1]  # two at the top
    assert set(predicted_values(low, 0, min_pairs=6)) == {0, 1, 2, 3, 4, 5}


def test_progress_line_during_the_final_retrain_counts_the_retrains(sim_cfg, tmp_path):
    """After the search the line follows the final retrain (done / running, its best
    final metric, its own ETA) instead of repeating the search's frozen counts and ETA."""
    from gpunet_mm.search.progress import SearchProgress

    rung = rung_trainer()

    def train(task):
        if task.payload.get('final'):
            return {'metric': 100.0 + task.trial_id, 'epochs': 24}
        return rung(task)

    out = io.StringIO()
    cfg = _fid_cfg(sim_cfg)
    cfg['nas']['final'] = dict(top_k=1, schedule=dict(train_cfg=dict(max_epochs=24)))
    s = _run(cfg, tmp_path, train, on_update=SearchProgress(12, live=False, stream=out))
    lines = out.getvalue().splitlines()
    finals = [ln for ln in lines if ln.startswith('[final] ')]
    n = len(s['final']['runs'])
    assert n >= 1 and finals, lines[-5:]
    # every search line comes before the first final line
    assert max(i for i, ln in enumerate(lines) if ' trained, ' in ln) < lines.index(finals[0])
    assert finals[0].startswith(f'[final] retraining the top {n} on the full schedule: 0/{n} done')
    best = max(s['final']['runs'], key=lambda r: r['final_metric'])
    assert finals[-1].startswith(
        f'[final] retraining the top {n} on the full schedule: {n}/{n} done, 0 running'
    )
    assert f'| best metric {best["final_metric"]:.4f} (#{best["trial_id"]}) |' in finals[-1]
    assert finals[-1].endswith('ETA -')


@pytest.mark.parametrize('ahead', [0, 2])
def test_look_ahead_on_a_shared_cpu_keeps_workers_busy_within_the_windows(sim_cfg, tmp_path, ahead):
    """On a shared device (``exclusive=False``) a candidate is timed only while nothing
    trains. Without ``propose_ahead`` a freed worker then idles until the other's attempt
    ends; ``propose_ahead=2`` times spare candidates in each window, so a freed worker
    takes one at once. Either way every timing falls in a window, the compute budget holds
    and nothing is left queued. (Here 41 % of the polls find a worker idle without the
    look-ahead, 16 % with it; in a real demo each window is longer by the spares it times,
    which ate the gain: docs/search_measurements.md, 2026-12-04.)"""
    from gpunet_mm.search import LocalExecutor

    from .conftest import FakeLatency

    class SharedLatency(FakeLatency):
        exclusive = False

        def measure(self, archs):
            busy.append(ex.running)
            return super().measure(archs)

    class Watched(LocalExecutor):
        def poll(self, timeout):
            if self._queue:
                slots.append(len(self._queue))  # busy workers while one attempt trains
            return super().poll(timeout)

    busy, slots = [], []
    ex = Watched(rung_trainer(), num_workers=2)
    cfg = _fid_cfg(sim_cfg)
    cfg['nas'].update(num_trials=30, compute_budget=40, propose_ahead=ahead)
    s = run_search(
        cfg,
        str(tmp_path),
        simulate=True,
        executor=ex,
        latency=SharedLatency(),
        write_reports=False,
    )
    assert busy and set(busy) == {0}  # timed only in windows
    assert s['compute_epochs'] <= 40 and s['trials_by_status'].get('queued', 0) == 0
    idle = sum(n == 1 for n in slots) / len(slots)
    if ahead:
        assert idle < 0.25, idle
    else:
        assert idle > 0.25, idle
