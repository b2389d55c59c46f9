"""--simulate: the real controller on virtual workers."""

import json

import pytest

from gpunet_mm.search.api import run_search
from gpunet_mm.search.simulate import SimulatedExecutor


def test_simulated_64_workers(sim_cfg, tmp_path):
    sim_cfg['nas']['num_trials'] = 160
    sim_cfg['nas']['simulate'].update(num_workers=64, failure_rate=0.05)
    sim_cfg['nas']['propose_ahead'] = 16
    sim_cfg['nas']['ask_batch'] = 16
    s = run_search(sim_cfg, str(tmp_path), simulate=True)
    assert s['trials_by_status']['complete'] + s['trials_by_status']['failed'] >= 160
    assert s['num_workers'] == 64
    assert 0.3 < s['dispatch_efficiency'] <= 1.0
    assert s['controller_cpu_s_per_trial'] > 0
    saved = json.loads((tmp_path / 'summary.json').read_text())
    assert saved['dispatch_efficiency'] == pytest.approx(s['dispatch_efficiency'])
    # injected failures were retried: some attempt ended in error, few trials failed for good
    assert s['trials_by_status']['failed'] < 10


def test_virtual_clock_charges_controller_time():
    ex = SimulatedExecutor(lambda a: 1.0, num_workers=2, mean_trial_s=10.0, duration_sigma=0.0)
    from gpunet_mm.search.executor import TrialTask

    ex.submit(TrialTask(0, 1, {}))
    ex.charge(4.0)
    assert ex.clock() == 4.0
    out = ex.poll(1.0)
    assert len(out) == 1 and out[0].outcome == 'ok'
    assert ex.clock() == pytest.approx(10.0)
    assert ex.utilisation() == pytest.approx(10.0 / (2 * 10.0))
    # work handed out at t=0 only: the window up to the last dispatch is empty
    ex.submit(TrialTask(1, 1, {}))  # at t=10, the other slot idle since 0
    assert ex.dispatch_efficiency() == pytest.approx(10.0 / (2 * 10.0))


@pytest.mark.parametrize('ask_min', [1, 8])
def test_ask_min_batches_the_refills_without_starving_workers(
    ask_min, sim_cfg, tmp_path, monkeypatch
):
    """With ``ask_min`` the look-ahead queue is refilled in asks of at least that many (one
    model fit each) rather than one per finished trial, and the workers stay busy."""
    from gpunet_mm.nas.base import Optimizer

    sizes = []
    ask = Optimizer.ask

    def recording_ask(self, n=1):
        sizes.append(n)
        return ask(self, n)

    monkeypatch.setattr(Optimizer, 'ask', recording_ask)
    sim_cfg['nas']['num_trials'] = 120
    sim_cfg['nas']['simulate'].update(num_workers=24, failure_rate=0.0)
    sim_cfg['nas'].update(propose_ahead=16, ask_batch=16, ask_min=ask_min)
    s = run_search(sim_cfg, str(tmp_path / str(ask_min)), simulate=True, write_reports=False)
    assert s['trials_by_status']['complete'] >= 120
    assert s['stop_reason'] is None  # ended because the trials were done
    assert s['dispatch_efficiency'] > 0.9
    later = sizes[3:]  # after the first fill
    if ask_min == 1:
        assert min(later) == 1  # one ask per finished trial
    else:
        assert sorted(later)[len(later) // 2] >= ask_min
        assert sum(n < ask_min for n in later) <= len(later) // 4


def test_ask_min_must_be_a_positive_integer(sim_cfg, tmp_path):
    from gpunet_mm.search.api import SearchConfigError

    sim_cfg['nas']['ask_min'] = 0
    with pytest.raises(SearchConfigError, match='nas.ask_min: got 0'):
        run_search(sim_cfg, str(tmp_path), simulate=True)


def test_simulated_scores_are_named_surrogate(sim_cfg, tmp_path):
    """The surrogate objective is no detector's mAP: summary, results.json and the hub's
    import all call it surrogate_score, whatever the config's evaluator metric."""
    sim_cfg['nas'].update(metric='coco/bbox_mAP', num_trials=6)
    sim_cfg['latency_target'] = dict(backend='onnxruntime', device='cpu', precision='fp32', batch=1)
    sim_cfg['model'] = dict(type='RetinaNet')
    s = run_search(sim_cfg, str(tmp_path), simulate=True)
    assert s['metric'] == 'surrogate_score' and s['mode'] == 'simulate'
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['search']['metric_name'] == 'surrogate_score'
    from gpunet_mm.hub import search_entries

    rows = search_entries(str(tmp_path), allow_simulated=True)
    assert rows and all(e.metric_name == 'surrogate_score' for e in rows)
    assert all(e.caveats == ['simulated'] for e in rows)


def test_dispatch_benchmark_keeps_committed_results(tmp_path):
    """benchmarks/benchmark_nas_dispatch.py writes to work_dirs/ by default and never
    replaces an existing file (the committed figures) without --overwrite."""
    import os.path as osp
    import subprocess
    import sys

    from .conftest import ROOT

    script = osp.join(ROOT, 'benchmarks', 'benchmark_nas_dispatch.py')
    committed = osp.join(ROOT, 'benchmarks', 'results', 'nas_dispatch.json')
    before = open(committed).read()
    r = subprocess.run(
        [sys.executable, script, '--out', committed, '--workers', '2'],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=dict(__import__('os').environ, PYTHONPATH=ROOT),
        timeout=120,
    )
    assert r.returncode == 2 and 'exists (committed results?)' in r.stderr
    assert 'pass --overwrite' in r.stderr and open(committed).read() == before
    help_text = subprocess.run(
        [sys.executable, script, '--help'], capture_output=True, text=True, timeout=120,
        env=dict(__import__('os').environ, PYTHONPATH=ROOT),
    ).stdout  # fmt: skip
    assert 'work_dirs/benchmark_nas_dispatch/nas_dispatch.json' in help_text


def test_a_modelled_controller_cost_replaces_the_hosts_time():
    ex = SimulatedExecutor(lambda a: 1.0, num_workers=1, controller_s=0.25)
    ex.charge(4.0)  # however long the controller really took
    ex.charge(0.0)
    assert ex.clock() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r'controller_s: got -1.0; allowed: None or a finite'):
        SimulatedExecutor(lambda a: 1.0, num_workers=1, controller_s=-1.0)


def _jittery_clock(monkeypatch, seed):
    """``time.perf_counter`` that jumps by up to 20 s per call: a host under heavy, varying
    load (each real training lasts 60 virtual seconds here)."""
    import random
    import time

    rng, now = random.Random(seed), [0.0]

    def perf_counter():
        now[0] += rng.uniform(0.0, 20.0)
        return now[0]

    monkeypatch.setattr(time, 'perf_counter', perf_counter)


def _pool(sim_cfg, work_dir):
    from gpunet_mm.search.journal import SearchJournal

    s = run_search(sim_cfg, str(work_dir), simulate=True, write_reports=False)
    with SearchJournal.open(str(work_dir)) as j:
        rows = [(t.id, t.arch_hash, t.status, t.metric, t.latency_ms) for t in j.trials()]
        rungs = [(r['trial_id'], r['rung'], r['metric']) for r in j.rung_results()]
    return rows, rungs, s['wall_s']


def test_a_simulated_search_with_a_modelled_controller_cost_is_a_function_of_its_seed(
    sim_cfg, tmp_path, monkeypatch
):
    """Two runs of the same seed on hosts of different (and varying) speed: the same trials,
    the same rung results, the same virtual duration."""
    sim_cfg['nas'].update(num_trials=14, compute_budget=60)
    sim_cfg['nas']['simulate']['controller_s'] = 0.05
    sim_cfg['nas']['fidelity'] = dict(min_epochs=1, eta=3, max_epochs=9, min_observations=4)
    sim_cfg['train_cfg'] = dict(max_epochs=9)
    runs = []
    for i in range(2):
        _jittery_clock(monkeypatch, seed=i)
        runs.append(_pool(sim_cfg, tmp_path / f'run{i}'))
    assert len(runs[0][0]) > 10 and runs[0][1]  # a real search with rungs ran
    assert runs[0] == runs[1]
