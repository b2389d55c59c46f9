"""Ray workers that raise, diverge, hang and die: each becomes an outcome, none a crash."""

import time

import pytest

ray = pytest.importorskip('ray')

from gpunet_mm.search.executor import TrialTask  # noqa: E402
from gpunet_mm.search.ray_executor import RayExecutor, init_ray  # noqa: E402


@pytest.fixture(scope='module')
def local_ray():
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def _collect(ex, n, limit=90):
    out, t0 = [], time.time()
    while len(out) < n and time.time() - t0 < limit:
        out += ex.poll(1.0)
    return {o.trial_id: o for o in out}


def test_faults_become_outcomes(local_ray):
    ex = RayExecutor('tests.search.fault_worker.run', num_workers=5, num_cpus=0.1, threads=1)
    modes = ['ok', 'raise', 'nan', 'sleep', 'sigkill']
    for i, m in enumerate(modes):
        timeout = 8 if m == 'sleep' else None
        ex.submit(TrialTask(i, 1, dict(mode=m, value=0.5), dict(timeout_s=timeout)))
    got = _collect(ex, len(modes))
    assert got[0].outcome == 'ok' and got[0].result['metric'] == 0.5
    assert got[1].outcome == 'error' and 'raised on purpose' in got[1].error
    assert got[2].outcome == 'nan'
    assert got[3].outcome == 'timeout'
    assert got[4].outcome == 'crash'
    assert ex.running == 0


def test_threads_reach_the_worker(local_ray):
    ex = RayExecutor('tests.search.fault_worker.run', num_workers=1, num_cpus=0.1, threads=1)
    ex.submit(TrialTask(0, 1, dict(mode='threads'), {}))
    assert _collect(ex, 1)[0].result['omp'] == '1'
