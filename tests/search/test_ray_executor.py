"""Ray workers that raise, diverge, hang and die: each becomes an outcome, none a crash."""

import time

import pytest

ray = pytest.importorskip('ray')

from gpunet_mm.search.executor import TrialTask  # noqa: E402
from gpunet_mm.search.ray_executor import RayExecutor, init_ray  # noqa: E402

#: nothing listens here: a Ray that followed $RAY_ADDRESS (or a stale
#: /tmp/ray/ray_current_cluster, read the same way) would wait for it instead of starting
DEAD_ADDRESS = '127.0.0.1:9'


@pytest.fixture(scope='module')
def local_ray():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('RAY_ADDRESS', DEAD_ADDRESS)
        init_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_local_ray_starts_its_own_whatever_the_environment_names(local_ray):
    assert ray.get_runtime_context().gcs_address != DEAD_ADDRESS
    assert ray.cluster_resources().get('CPU') == 2  # ours: the num_cpus we asked for


def _collect(ex, n, limit=90):
    out, t0 = [], time.time()
    while len(out) < n and time.time() - t0 < limit:
        out += ex.poll(1.0)
    return {o.trial_id: o for o in out}


def test_local_ray_listens_on_loopback_only(local_ray):
    assert ray.get_runtime_context().gcs_address.startswith('127.0.0.1:')
    assert {n['NodeManagerAddress'] for n in ray.nodes()} == {'127.0.0.1'}


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


def test_joins_a_ray_started_with_ray_start(tmp_path):
    """The documented cluster path on one machine: `ray start --head`, then --ray-address."""
    import os
    import os.path as osp
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile

    from .conftest import ROOT

    ray_cli = osp.join(osp.dirname(sys.executable), 'ray')
    if not osp.exists(ray_cli):
        ray_cli = shutil.which('ray')
    if ray_cli is None:
        pytest.skip('no ray CLI')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # loopback only (see init_ray); token auth off for this one-machine test cluster
    env = dict(
        os.environ,
        RAY_USAGE_STATS_ENABLED='0',
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER='0',
        RAY_AUTH_MODE='disabled',
    )
    temp_dir = tempfile.mkdtemp(prefix='ray', dir='/tmp')
    start = [
        ray_cli,
        'start',
        '--head',
        '--node-ip-address=127.0.0.1',
        f'--port={port}',
        '--num-cpus=1',
        '--include-dashboard=false',
        f'--temp-dir={temp_dir}',  # short: socket paths
    ]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    try:
        code = (
            'from gpunet_mm.search.ray_executor import RayExecutor, init_ray\n'
            'from gpunet_mm.search.executor import TrialTask\n'
            f'init_ray("127.0.0.1:{port}")\n'
            'ex = RayExecutor("tests.search.fault_worker.run", 1, num_cpus=1)\n'
            'ex.submit(TrialTask(7, 1, dict(value=0.25), {}))\n'
            'out = []\n'
            'while not out:\n'
            '    out = ex.poll(1.0)\n'
            'print("RESULT", out[0].trial_id, out[0].outcome, out[0].result["metric"])\n'
        )
        r = subprocess.run(
            [sys.executable, '-c', code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert 'RESULT 7 ok 0.25' in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    finally:
        _stop_cluster(temp_dir, port)


def _stop_cluster(temp_dir, port):
    """Kill this test's own cluster: the processes whose command line names its temp dir
    or its GCS address. Never ``ray stop``: it kills every Ray on the machine, the local
    clusters of the other tests and of any search running beside them included (a search
    then sees its raylet die)."""
    import os
    import signal

    marks = (temp_dir.encode(), f'--address=127.0.0.1:{port}'.encode())
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read()
        except OSError:
            continue
        if any(m in cmd for m in marks):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def test_missing_data_in_the_worker_is_named_as_the_setups_fault(local_ray):
    ex = RayExecutor('tests.search.fault_worker.run', num_workers=2, num_cpus=0.1)
    ex.submit(TrialTask(0, 1, dict(mode='nodata'), {}))
    ex.submit(TrialTask(1, 1, dict(mode='raise'), {}))
    got = _collect(ex, 2)
    assert got[0].outcome == 'error' and 'does not exist' in got[0].error
    assert 'training data is not usable' in got[0].systemic
    assert 'make_demo_data.py' in got[0].systemic
    assert got[1].systemic is None  # a worker's own error stays the trial's


@pytest.mark.skipif(not __import__('os').path.exists('/dev/full'), reason='needs /dev/full')
def test_a_full_disk_in_the_worker_is_named_as_the_setups_fault(local_ray):
    """ENOSPC raised in a Ray worker, bare or wrapped (Ray's pickling drops the wrapper's
    ``__cause__``; its traceback text keeps it): a reason to stop, not the trial's error."""
    ex = RayExecutor('tests.search.fault_worker.run', num_workers=2, num_cpus=0.1)
    ex.submit(TrialTask(0, 1, dict(mode='diskfull'), {}))
    ex.submit(TrialTask(1, 1, dict(mode='diskfull_wrapped'), {}))
    got = _collect(ex, 2)
    for o in got.values():
        assert o.outcome == 'error' and 'the disk is full' in o.systemic


RAYLET_KILL = """
import os, signal, sys, time
from gpunet_mm.search.executor import TrialTask
from gpunet_mm.search.ray_executor import RayExecutor, init_ray
import ray
init_ray(num_cpus=2)
ex = RayExecutor('tests.search.fault_worker.run', num_workers=2, num_cpus=0.1)
ex.submit(TrialTask(0, 1, dict(value=0.5), {}))
out = []
while not out:
    out = ex.poll(1.0)
print('BEFORE', out[0].outcome, out[0].systemic)
raylet = ray._private.worker._global_node.all_processes['raylet'][0].process.pid
os.kill(raylet, signal.SIGKILL)  # this test's own raylet, started above
time.sleep(1)
ex.submit(TrialTask(1, 1, dict(value=0.5), {}))
out, t0 = [], time.time()
while not out and time.time() - t0 < 60:
    out = ex.poll(1.0)
print('AFTER', out[0].outcome, '|', out[0].systemic)
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.slow
def test_a_dead_raylet_is_named_as_the_clusters_fault(tmp_path):
    """The failure of the session-9 demo: the raylet dies mid-search; every attempt sent
    after it fails at once. Each such outcome carries the cause the controller stops on.
    In a process of its own: the test kills that process's raylet."""
    import subprocess
    import sys

    from .conftest import ROOT

    r = subprocess.run(
        [sys.executable, '-c', RAYLET_KILL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(__import__('os').environ, RAY_ADDRESS=DEAD_ADDRESS),
    )
    lines = {
        ln.split(' ', 1)[0]: ln for ln in r.stdout.splitlines() if ln[:5] in ('BEFOR', 'AFTER')
    }
    assert lines.get('BEFORE') == 'BEFORE ok None', r.stdout + r.stderr[-2000:]
    assert lines['AFTER'].startswith('AFTER crash | the Ray cluster'), lines['AFTER']
    assert 'raylet died' in lines['AFTER']
