"""``benchmarks/benchmark_gpu_tiers.py`` times through the one latency service (issue 19):
its CPU path (the same code as on a GPU, eager only) on tier 0 with tiny settings writes a
row in the committed result's format and stores the measurement under the one cache key."""

import json
import os

from gpunet_mm.deploy import latency

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMITTED = os.path.join(ROOT, 'benchmarks', 'results', 'gpu_tiers_h100.json')


def test_cpu_smoke_run_uses_the_latency_service_and_the_committed_format(tmp_path, monkeypatch):
    from benchmarks.benchmark_gpu_tiers import main
    from gpunet_mm.deploy import LatencyCache, LatencyTarget, get_backend
    from gpunet_mm.models import get_tier

    cache, out = str(tmp_path / 'latency.sqlite'), tmp_path / 'tiers.json'
    argv = ['--device', 'cpu', '--tiers', '0', '--precisions', 'fp32', '--iters', '2',
            '--warmup', '1', '--out', str(out), '--cache', cache]  # fmt: skip
    main(argv)
    got = json.loads(out.read_text())
    with open(COMMITTED) as f:
        committed = json.load(f)
    (row,) = got['rows']
    want_keys = {k for k in committed['rows'][0] if not k.startswith(('cudagraph_', 'eager_fp16'))}
    assert set(row) == want_keys
    assert set(committed['env']) <= set(got['env']) and got['env']['gpu'] is None
    # the release classifier of GPUNet-0, the network the committed GPU row timed
    assert row['tier'] == 'GPUNet-0' and row['params_m'] == committed['rows'][0]['params_m']
    assert 0 < row['eager_fp32_median_ms'] <= row['eager_fp32_p90_ms']

    # stored under the key every tool computes for that classifier on that target
    target = LatencyTarget(backend='torch', device='cpu', precision='fp32', iters=2, warmup=1)
    key = latency.latency_key(
        get_tier(0), None, target, get_backend('torch', device='cpu'), task='classification'
    )
    stored = LatencyCache(cache).get(key)
    assert stored is not None and round(stored.median_ms, 4) == row['eager_fp32_median_ms']

    # so a second run (or any other tool on that key) measures nothing
    def boom(*a, **k):
        raise AssertionError('measured again: the benchmark does not use the cache key')

    monkeypatch.setattr(latency, 'build_classifier', boom)  # what measuring builds with
    main(argv)
    assert json.loads(out.read_text())['rows'][0] == row
