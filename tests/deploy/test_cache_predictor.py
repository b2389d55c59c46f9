"""Latency cache (no re-measurement) and the predictor's fit/predict round trip."""

import multiprocessing as mp

import numpy as np
import pytest

from gpunet_mm.deploy import LatencyCache, LatencyKey, LatencyPredictor, LatencyResult
from gpunet_mm.deploy.predictor import FEATURES, arch_features, evaluate
from gpunet_mm.deploy.random_archs import sample_random_archs


def _result(ms=1.0):
    return LatencyResult.from_times(
        [ms, ms * 1.1, ms * 0.9],
        backend='onnxruntime',
        warmup=1,
        precision='fp32',
        batch=1,
        shape=(256, 256),
        env={'device': 'cpu:x'},
    )


def _key(**kw):
    d = dict(
        arch_hash='abc',
        shape=(256, 256),
        batch=1,
        precision='fp32',
        backend='onnxruntime',
        device='cpu:x:2t',
        model_hash='m',
    )
    d.update(kw)
    return LatencyKey(**d)


def test_cache_hit_does_not_remeasure_across_instances(tmp_path):
    path = str(tmp_path / 'lat.sqlite')
    calls = []

    def measure():
        calls.append(1)
        return _result(2.0)

    r1, hit1 = LatencyCache(path).get_or_measure(_key(), measure)
    r2, hit2 = LatencyCache(path).get_or_measure(_key(), measure)  # a "new run"
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert r2.median_ms == r1.median_ms and r2.env == r1.env and r2.shape == (256, 256)
    for change in (
        dict(shape=(288, 288)),
        dict(batch=2),
        dict(precision='fp16'),
        dict(backend='tensorrt'),
        dict(device='cuda:A100'),
        dict(arch_hash='x'),
    ):
        _, hit = LatencyCache(path).get_or_measure(_key(**change), measure)
        assert not hit, change
    assert len(calls) == 7 and len(LatencyCache(path)) == 7
    rows = list(LatencyCache(path).records(backend='tensorrt'))
    assert len(rows) == 1 and rows[0]['device'] == 'cpu:x:2t'


def _writer(path, start):
    cache = LatencyCache(path)
    for i in range(start, start + 15):
        cache.put(_key(arch_hash=f'a{i}'), _result(i + 1.0))


def test_cache_concurrent_writers(tmp_path):
    path = str(tmp_path / 'lat.sqlite')
    LatencyCache(path)
    procs = [mp.get_context('fork').Process(target=_writer, args=(path, s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(LatencyCache(path)) == 30


def test_classifier_latency_goes_through_the_service_and_its_cache(tmp_path, monkeypatch):
    """The classifier path of the latency service: exported once, timed on the target's
    clock, and a second call (a new cache object on the same file) builds nothing."""
    from gpunet_mm.deploy import latency
    from gpunet_mm.models import get_tier

    arch = get_tier('GPUNet-0')
    cache = LatencyCache(str(tmp_path / 'c.sqlite'))
    target = latency.LatencyTarget(iters=2, warmup=1, threads=1, shape=(64, 64), clock='cpu')
    work = str(tmp_path / 'onnx')
    r1, hit1 = latency.measure_latency(arch, None, target, cache, work, task='classification')
    assert not hit1 and r1.median_ms > 0 and r1.shape == (64, 64)
    assert r1.env['clock'] == 'process_cpu' and r1.env['task'] == 'classification'
    import onnx

    assert [o.name for o in onnx.load(r1.env['onnx']).graph.output] == ['logits']

    def boom(*a, **k):
        raise AssertionError('exported again despite a cache hit')

    monkeypatch.setattr(latency, 'export_classifier', boom)
    monkeypatch.setattr(latency, 'build_classifier', boom)
    r2, hit2 = latency.measure_latency(
        arch, None, target, LatencyCache(cache.path), task='classification'
    )
    assert hit2 and r2.median_ms == r1.median_ms
    # the classifier and the detector of one arch are different measurements
    key = latency.latency_key(arch, None, target, task='classification')
    assert key != latency.latency_key(arch, None, target, task='detection')
    with pytest.raises(ValueError, match="latency task: got 'segmentation'"):
        latency.measure_latency(arch, None, target, task='segmentation')


def test_random_archs_are_valid_and_distinct():
    from gpunet_mm.models.backbones.gpunet import GPUNet

    archs = sample_random_archs(30, seed=0)
    assert len({a.structural_hash() for a in archs}) >= 29
    for a in archs:
        assert a.level_strides() == [2, 4, 8, 16, 32]
        assert 224 <= a.resolution <= 320 and a.resolution % 32 == 0
    net = GPUNet(arch=archs[0], out_indices=(2, 3, 4))
    assert len(net.out_channels) == 3


def test_predictor_fit_predict_roundtrip(tmp_path):
    archs = sample_random_archs(40, seed=1)
    true = np.linspace(0.5, 2.0, len(FEATURES))
    lat = [float(arch_features(a) @ true) for a in archs]
    pred = LatencyPredictor(target={'backend': 'synthetic'}).fit(archs[:25], lat[:25])
    p = pred.predict_many(archs[25:])
    stats = evaluate(p, lat[25:])
    assert stats['kendall_tau'] > 0.95 and stats['mean_rel_error'] < 0.02
    assert stats['within_10pct'] == 1.0
    path = str(tmp_path / 'sub' / 'pred.json')  # save creates the folder
    pred.save(path)
    loaded = LatencyPredictor.load(path)
    assert np.allclose(loaded.predict_many(archs[25:]), p)
    assert loaded.target == {'backend': 'synthetic'} and np.all(loaded.coef >= 0)
    # the time per prediction is a benchmark figure (benchmarks/benchmark_deploy.py,
    # predict_us_cold), not a unit-test assertion
    with pytest.raises(ValueError, match='at least'):
        LatencyPredictor().fit(archs[:3], lat[:3])
    with pytest.raises(RuntimeError, match='before fit'):
        LatencyPredictor().predict(archs[0])


@pytest.mark.slow
def test_predictor_ranks_real_measurements(tmp_path):
    from gpunet_mm.deploy.latency import LatencyTarget, measure_latency

    archs = sample_random_archs(36, seed=7, max_layers=2)
    cache = LatencyCache(str(tmp_path / 'c.sqlite'))
    # process CPU time on one thread: on this shared CPU wall time swung the sum of the 36
    # latencies from 0.8 to 2.2 s between runs (tau 0.2-0.9); CPU time stays within 2 %
    target = LatencyTarget(iters=5, warmup=2, threads=1, clock='cpu')
    lat = [measure_latency(a, None, target, cache=cache)[0].median_ms for a in archs]
    # fit and held-out sets interleave, so drifting machine load hits both alike
    pred = LatencyPredictor().fit(archs[::2], lat[::2])
    stats = evaluate(pred.predict_many(archs[1::2]), lat[1::2])
    assert stats['kendall_tau'] > 0.6, stats
