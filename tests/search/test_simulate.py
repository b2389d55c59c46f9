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
