"""``latency_target.rounds``: a shared machine's load bursts must not decide a latency.

The service times each new architecture in several rounds, round-robin over one call's
architectures, keeps the median round and caches it; a cached architecture is not timed.
"""

import os

import pytest

from gpunet_mm.deploy import latency
from gpunet_mm.deploy.backends.base import LatencyResult

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEARCH_CFG = os.path.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py')


def _result(ms: float) -> LatencyResult:
    return LatencyResult.from_times(
        [ms, ms, ms * 1.1],
        backend='onnxruntime',
        warmup=1,
        precision='fp32',
        batch=1,
        shape=(128, 128),
        env=dict(clock='process_cpu'),
    )


@pytest.fixture
def service(tmp_path):
    from mmengine.config import Config

    from gpunet_mm.search.latency_service import LatencyService

    cfg = Config.fromfile(SEARCH_CFG).to_dict()

    def make(rounds):
        target = dict(cfg['latency_target'], rounds=rounds, anchor=None)  # rounds alone
        return LatencyService(cfg, target, str(tmp_path / 'lat.sqlite'), str(tmp_path / 'onnx'))

    return make


def _archs():
    import numpy as np
    from mmengine.config import Config

    from gpunet_mm.nas import build_space

    space = build_space(Config.fromfile(SEARCH_CFG).search_space)
    return [space.decode(x).to_dict() for x in space.sample(2, np.random.default_rng(0))]


def test_rounds_are_round_robin_and_the_median_round_is_kept(service, monkeypatch):
    # round medians per arch: a burst inflates arch 0's second round and arch 1's first
    script = {0: [10.0, 14.0, 10.4], 1: [25.0, 20.0, 20.6]}
    calls = []

    def fake(arch, template, target, cache=None, work_dir=None, task='detection', backend=None):
        assert cache is None  # the rounds are not cached one by one
        i = 0 if arch.to_dict() == archs[0] else 1
        calls.append(i)
        return _result(script[i][calls.count(i) - 1]), False

    archs = _archs()
    monkeypatch.setattr(latency, 'measure_latency', fake)
    svc = service(3)
    rows = svc.measure(archs)
    assert calls == [0, 1, 0, 1, 0, 1]
    assert [r['latency_ms'] for r in rows] == [10.4, 20.6]
    assert rows[0]['rounds_ms'] == [10.0, 14.0, 10.4] and not rows[0]['cached']

    # stored: a second call (another service on the same cache) times nothing
    def boom(*a, **k):
        raise AssertionError('timed a cached architecture again')

    monkeypatch.setattr(latency, 'measure_latency', boom)
    again = service(3).measure(list(reversed(archs)))
    assert [r['latency_ms'] for r in again] == [20.6, 10.4]
    assert all(r['cached'] for r in again)


def test_one_round_is_the_single_measurement(service, monkeypatch):
    calls = []

    def fake(arch, template, target, cache=None, work_dir=None, task='detection', backend=None):
        calls.append(cache)
        return _result(9.0), False

    monkeypatch.setattr(latency, 'measure_latency', fake)
    (row,) = service(1).measure(_archs()[:1])
    assert row['latency_ms'] == 9.0 and 'rounds_ms' not in row
    assert len(calls) == 1 and calls[0] is not None  # through the cache, as before


def test_bad_rounds_are_refused_by_the_schema():
    from gpunet_mm.schema import LatencyTargetSettings, SchemaError, validate

    with pytest.raises(SchemaError, match='rounds'):
        validate(LatencyTargetSettings, dict(rounds=0), 'latency_target')


def test_the_anchor_is_re_timed_with_each_window_and_its_drift_divided_out(service, monkeypatch):
    """Load that lasts a whole window slows every detector in it alike: the anchor tier
    timed in the same rounds measures it, and the new latencies are scaled back to the
    anchor's first timing."""
    from gpunet_mm.search.latency_service import LatencyService

    a, b = _archs()
    slow = {'x': 1.0}  # the load factor of the current window
    true = {}

    def fake(arch, template, target, cache=None, work_dir=None, task='detection', backend=None):
        d = arch.to_dict()
        key = 'anchor' if d not in (a, b) else ('a' if d == a else 'b')
        return _result(true[key] * slow['x']), False

    monkeypatch.setattr(latency, 'measure_latency', fake)
    true.update(anchor=10.0, a=20.0, b=15.0)
    svc = service(3)
    svc = LatencyService(svc.cfg, dict(svc.target_cfg, anchor='GPUNet-0'), svc.cache.path, None)
    (ra,) = svc.measure([a])  # first window: the anchor's first timing is the unit
    assert ra['latency_ms'] == pytest.approx(20.0) and 'load_scale' not in ra
    slow['x'] = 1.25  # a later window under 25 % more load
    (rb,) = svc.measure([b])
    assert rb['latency_ms'] == pytest.approx(15.0) and rb['load_scale'] == pytest.approx(0.8)
    assert rb['rounds_ms'] == [pytest.approx(15.0 * 1.25)] * 3  # the raw rounds are kept


def test_an_empty_anchor_is_refused():
    from gpunet_mm.schema import LatencyTargetSettings, SchemaError, validate

    with pytest.raises(SchemaError, match='anchor'):
        validate(LatencyTargetSettings, dict(anchor=''), 'latency_target')
