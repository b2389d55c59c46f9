"""Issue 19's cache bug: a detector timed by one tool is found cached by every other.

``tools/benchmark_latency.py``, the search's latency service and the hub benchmark once built
their cache keys four ways, so the same detector on the same target was timed again by each.
They all go through :func:`gpunet_mm.deploy.latency.measure_latency` now.
"""

import argparse
import json
import os

import pytest

from gpunet_mm.deploy import latency

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CFG = os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py')
SEARCH_CFG = os.path.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py')


def _no_measuring(monkeypatch):
    def boom(*a, **k):
        raise AssertionError('measured again: the cache key differs between the tools')

    for name in ('export_detector', 'build_arch_detector', 'time_onnx'):
        monkeypatch.setattr(latency, name, boom)


def test_a_config_timed_by_the_tool_is_cached_for_the_search_and_the_hub(tmp_path, monkeypatch):
    from mmengine.config import Config

    from gpunet_mm.models import get_tier
    from gpunet_mm.search.api import reference_arch
    from gpunet_mm.search.latency_service import LatencyService
    from tools.benchmark_latency import main

    cache = str(tmp_path / 'latency.sqlite')
    rows_file = tmp_path / 'rows.json'
    # 1. the tool times the demo detector (GPUNet-0) at the search's 128 px, on one thread
    main(
        [DEMO_CFG, '--shape', '128', '128', '--threads', '1', '--iters', '2', '--warmup', '1',
         '--cache', cache, '--work-dir', str(tmp_path / 'tool'), '--json', str(rows_file)]
    )  # fmt: skip
    (row,) = json.loads(rows_file.read_text())
    assert not row['cached'] and row['median_ms'] > 0 and row['shape'] == [128, 128]
    _no_measuring(monkeypatch)

    # 2. the search's latency service on the same target: GPUNet-0 as the demo search
    # trains it (an arch of resolution 128, from a search config) is a cache hit
    scfg = Config.fromfile(SEARCH_CFG).to_dict()
    target = dict(scfg['latency_target'], clock='wall', score_fraction=0.0)
    svc = LatencyService(scfg, target, cache)
    ref = reference_arch('GPUNet-0', argparse.Namespace(resolutions=[128]))
    assert ref['resolution'] == 128 != get_tier('GPUNet-0').resolution
    (found,) = svc.measure([ref])
    assert found['cached'] and found['latency_ms'] == row['median_ms']

    # 3. the hub benchmark's detector path on that target finds it too
    from benchmarks import benchmark_hub

    args = argparse.Namespace(
        iters=2, warmup=1, threads=1, work_dir=str(tmp_path / 'hub'), cache=cache
    )
    monkeypatch.setattr(benchmark_hub, 'detector_counts', lambda *a: dict(params=1, flops=1))
    (entry,) = benchmark_hub._measure_detector_group(
        [('RetinaNet-GPUNet-0-demo', 0, 'retinanet', DEMO_CFG)], (128, 128), args
    )
    assert entry.latency_ms == round(row['median_ms'], 3)


def test_what_the_key_holds():
    """Two tools agree only where the measurement is the same: the NMS load, the clock and
    the shape are part of the key; the arch's nominal resolution is not (the shape is)."""
    from gpunet_mm.models import get_tier

    a = get_tier('GPUNet-0')
    t = latency.LatencyTarget(threads=1, shape=(128, 128))
    key = latency.latency_key(a, DEMO_CFG, t)
    assert latency.latency_key(a.replace(resolution=128), DEMO_CFG, t) == key
    for change in (dict(score_fraction=0.0), dict(clock='cpu'), dict(shape=(160, 160))):
        other = latency.LatencyTarget(**{**t.to_dict(), 'shape': (128, 128), **change})
        assert latency.latency_key(a, DEMO_CFG, other) != key, change
    with pytest.raises(ValueError, match="latency task: got 'seg'"):
        latency.latency_key(a, DEMO_CFG, t, task='seg')
