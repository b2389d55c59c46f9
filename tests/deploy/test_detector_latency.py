"""Whole-detector latency (measure_detector), its cache key, and the predictor's contract."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from gpunet_mm.arch_config import with_arch
from gpunet_mm.deploy import LatencyCache, LatencyPredictor, LatencyResult, LatencyTarget, latency
from gpunet_mm.deploy.predictor import (
    DEMO_PREDICTOR,
    FEATURES,
    arch_features,
    fit_from_cache,
    load_demo_predictor,
)
from gpunet_mm.deploy.random_archs import sample_random_archs
from gpunet_mm.models.arch_spec import BlockRow, GPUNetArch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CFG = os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py')
BENCH_JSON = os.path.join(ROOT, 'benchmarks/results/deploy_cpu_predictor.json')


def _tiny_arch(width=16, resolution=128, se=False):
    rows = (
        BlockRow('conv', 3, 16, 1, 2, 1, 'relu', False, 0),
        BlockRow('fused', 3, 24, 1, 2, 2, 'relu', False, 2),
        BlockRow('irb', 3, 32, 1, 2, 2, 'swish', se, 4),
        BlockRow('irb', 3, width * 3, 2, 2, 2, 'relu', se, 6),
        BlockRow('irb', 5, width * 4, 1, 2, 3, 'relu', False, 7),
    )
    return GPUNetArch('tiny', rows, tail_channels=(), resolution=resolution)


# --------------------------------------------------------------------------- templates
def test_model_cfg_uses_demo_template():
    arch = _tiny_arch()
    cfg = latency.model_cfg(arch, DEMO_CFG)
    bb = cfg['backbone']
    assert 'tier' not in bb and bb['arch']['rows'][0]['out_channels'] == 16
    # the template's own backbone settings survive (a new arch has no weights to keep
    # frozen: with_arch's rule); the neck follows the arch
    assert tuple(bb['out_indices']) == (2, 3, 4) and bb['frozen_stages'] == -1
    assert bb['norm_eval'] is False and bb['init_cfg'] is None
    assert cfg['neck']['in_channels'] == [arch.level_channels()[i] for i in (2, 3, 4)]
    assert cfg['neck']['in_channels'] == [32, 48, 64]
    assert cfg['bbox_head']['norm_cfg']['type'] == 'GN'  # the demo head, untouched
    with pytest.raises(ValueError, match=r'out_indices \[2, 3, 7\].*0\.\.4'):
        with_arch(latency.resolve_template(DEMO_CFG), arch, out_indices=(2, 3, 7))
    resnet = dict(latency.SMALL_RETINANET, backbone=dict(type='ResNet', depth=18))
    with pytest.raises(ValueError, match="'ResNet'; allowed: GPUNet"):
        latency.model_cfg(arch, resnet)
    assert latency.model_cfg(None, resnet) == resnet  # no arch: the template as it stands
    with pytest.raises(FileNotFoundError, match='nope.py'):
        latency.model_cfg(arch, 'nope.py')


def test_template_hash_ignores_the_arch_but_not_the_head():
    demo = latency.resolve_template(DEMO_CFG)
    a = latency.model_cfg(_tiny_arch(16), demo)
    b = latency.model_cfg(_tiny_arch(32), demo)
    assert latency.template_hash(a) == latency.template_hash(b)
    assert latency.template_hash(a) == latency.template_hash(DEMO_CFG)
    wider = dict(demo, bbox_head=dict(demo['bbox_head'], feat_channels=128))
    assert latency.template_hash(wider) != latency.template_hash(demo)


def test_default_template_is_the_shipped_config_and_keeps_its_cache_key():
    """SMALL_RETINANET comes from a config file in the package, read like any template.

    Its hash is part of every cached detector latency key: the value below is the one the
    search's keys have had since the file replaced the dict (issue 19's one key function kept
    it), so existing latency caches keep answering.
    """
    import ast
    import fnmatch

    path = latency.SMALL_RETINANET_CFG
    assert path.startswith(os.path.join(ROOT, 'gpunet_mm', 'deploy', 'data'))
    assert latency.resolve_template(None) == latency.SMALL_RETINANET
    assert latency.resolve_template(path) == latency.SMALL_RETINANET
    assert latency.template_hash(None) == 'fd224b6d300ec359'
    assert latency.template_hash(path, clock='cpu') == latency.template_hash(None, clock='cpu')
    assert latency.template_hash(None, clock='cpu') == '96c27dd9f2cff9df'
    # setup.py ships it (package_data), so the default works from an installed package
    with open(os.path.join(ROOT, 'setup.py')) as f:
        tree = ast.parse(f.read())
    (package_data,) = [
        ast.literal_eval(kw.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'setup'
        for kw in node.keywords
        if kw.arg == 'package_data'
    ]
    rel = os.path.relpath(path, os.path.join(ROOT, 'gpunet_mm', 'deploy'))
    assert any(fnmatch.fnmatch(rel, g) for g in package_data['gpunet_mm.deploy'])


# --------------------------------------------------------------------------- target
def test_latency_target_validates_and_round_trips():
    t = LatencyTarget(threads=1, shape=256, clock='cpu', post_processing=dict(pre_top_k=500))
    assert t.shape == (256, 256)
    assert LatencyTarget.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(ValueError, match="backend: got 'onnx'; allowed: onnxruntime"):
        LatencyTarget(backend='onnx')
    with pytest.raises(ValueError, match="clock 'cpu'.*'cuda'"):
        LatencyTarget(device='cuda', clock='cpu')
    with pytest.raises(ValueError, match=r'shape: got \(0, 256\)'):
        LatencyTarget(shape=(0, 256))
    with pytest.raises(ValueError, match='batch: got 0'):
        LatencyTarget(batch=0)
    with pytest.raises(ValueError, match=r"keys: got \['shapes'\]"):
        LatencyTarget.from_dict(dict(shapes=256))
    with pytest.raises(ValueError, match='post_processing keys'):
        LatencyTarget(post_processing=dict(topk=3))


# --------------------------------------------------------------------------- measurement
def test_measure_detector_end_to_end_and_cached(tmp_path, monkeypatch):
    import onnx

    arch = _tiny_arch()
    target = LatencyTarget(threads=1, shape=(128, 128), iters=3, warmup=1, clock='cpu')
    cache = LatencyCache(str(tmp_path / 'lat.sqlite'))
    work = str(tmp_path / 'onnx')
    r1 = latency.measure_detector(arch, DEMO_CFG, target, cache=cache, work_dir=work)
    assert r1.median_ms > 0 and r1.shape == (128, 128) and r1.iters == 3
    assert r1.env['clock'] == 'process_cpu' and r1.env['wall_median_ms'] > 0
    assert r1.env['post_processing'] is True and r1.env['threads'] == 1
    assert GPUNetArch.from_dict(r1.env['arch']).structural_hash() == arch.structural_hash()
    # the timed graph is the whole detector: NMS inside, dets/labels out
    proto = onnx.load(r1.env['onnx'])
    assert 'NonMaxSuppression' in {n.op_type for n in proto.graph.node}
    assert [o.name for o in proto.graph.output] == ['dets', 'labels']
    assert (cache.hits, cache.misses) == (0, 1)

    def boom(*a, **k):
        raise AssertionError('measured again despite a cache hit')

    monkeypatch.setattr(latency, 'export_detector', boom)
    monkeypatch.setattr(latency, 'time_onnx', boom)
    monkeypatch.setattr(latency, 'build_arch_detector', boom)
    r2 = latency.measure_detector(arch, DEMO_CFG, target, cache=LatencyCache(cache.path))
    assert r2.median_ms == r1.median_ms and r2.env['arch'] == r1.env['arch']
    # the key holds the post-processing and the template: either change is a new measurement
    key = latency.latency_key(arch, DEMO_CFG, target)
    assert cache.get(key) is not None
    other_pp = LatencyTarget(
        **{**target.to_dict(), 'shape': (128, 128), 'post_processing': dict(pre_top_k=100)}
    )
    assert latency.latency_key(arch, DEMO_CFG, other_pp) != key
    assert latency.latency_key(arch, None, target) != key
    with pytest.raises(AssertionError, match='measured again'):
        latency.measure_detector(arch, DEMO_CFG, other_pp, cache=cache)


def test_measure_detector_nms_load_and_bad_shape(tmp_path):
    from gpunet_mm.deploy.export import ShapeError

    arch = _tiny_arch()
    target = LatencyTarget(threads=1, shape=(128, 128), score_fraction=0.01)
    model, deploy_cfg = latency.build_arch_detector(arch, DEMO_CFG, target)
    import torch

    x = torch.from_numpy(latency.timing_input((128, 128)))
    x = (x[:, [2, 1, 0]] - model.data_preprocessor.mean) / model.data_preprocessor.std
    with torch.no_grad():
        scores = torch.cat([c.flatten() for c in model.bbox_head(model.extract_feat(x))[0]])
    frac = float((scores.sigmoid() > 0.05).float().mean())
    assert 0.005 < frac < 0.02, frac  # ~1% of (prior, class) pairs reach NMS, as asked
    with pytest.raises(ShapeError, match='stride 32'):
        latency.measure_detector(arch, DEMO_CFG, LatencyTarget(shape=(100, 128)))


# --------------------------------------------------------------------------- predictor
def _widen(arch, row, extra):
    rows = list(arch.rows)
    r = rows[row]
    rows[row] = BlockRow(
        r.type, r.kernel, r.out_channels + extra, r.num, r.stride, r.expansion, r.act, r.se, r.stage
    )
    return arch.replace(rows=tuple(rows))


@pytest.mark.parametrize('block', (1, 16))
@pytest.mark.parametrize('row', range(5))
def test_features_monotone_in_channels_and_resolution(row, block):
    demo = latency.resolve_template(DEMO_CFG)
    arch = _tiny_arch(se=True)
    base = arch_features(arch, (256, 256), demo, channel_block=block)
    wider = arch_features(_widen(arch, row, 16), (256, 256), demo, channel_block=block)
    assert np.all(wider >= base - 1e-12) and np.any(wider > base)
    bigger = arch_features(arch, (320, 320), demo, channel_block=block)
    assert np.all(bigger >= base - 1e-12)
    grows = [f for f, b, g in zip(FEATURES, base, bigger) if g > b]
    # resolution moves the backbone, the neck/head and every post-processing feature
    for f in (
        'dense_gflops',
        'neck_head_gflops',
        'post_scores_melems',
        'post_topk_kelems',
        'nms_kwork',
    ):
        assert f in grows
    if row >= 2:  # a level the neck reads: the lateral convs follow the arch's channels
        assert (
            wider[FEATURES.index('neck_lateral_gflops')]
            > base[FEATURES.index('neck_lateral_gflops')]
        )


def test_post_processing_features_follow_the_template():
    demo = latency.resolve_template(DEMO_CFG)
    arch = _tiny_arch()
    base = arch_features(arch, (256, 256), demo)
    more_cls = dict(demo, bbox_head=dict(demo['bbox_head'], num_classes=80))
    f80 = arch_features(arch, (256, 256), more_cls)
    small_k = arch_features(arch, (256, 256), demo, target=dict(post_processing=dict(pre_top_k=50)))
    i_scores, i_topk = FEATURES.index('post_scores_melems'), FEATURES.index('post_topk_kelems')
    assert f80[i_scores] > base[i_scores] and f80[i_topk] > base[i_topk]
    assert small_k[i_topk] < base[i_topk] and small_k[i_scores] == base[i_scores]


def test_predictor_refuses_bad_inputs():
    archs = sample_random_archs(20, seed=3)
    lat = [1.0 + i for i in range(20)]
    pred = LatencyPredictor().fit(archs, lat)
    for bad in ((0, 256), (-32, 256), (256,), (256.0, 256)):
        with pytest.raises(ValueError, match='shape: got'):
            pred.predict(archs[0], bad)
    for bad, idx in ((-1.0, 3), (0.0, 5), (float('nan'), 7)):
        y = list(lat)
        y[idx] = bad
        with pytest.raises(ValueError, match=rf'> 0 ms; got \[\({idx}, '):
            LatencyPredictor().fit(archs, y)


def test_from_dict_reads_committed_files():
    for path in (BENCH_JSON, DEMO_PREDICTOR):
        with open(path) as f:
            d = json.load(f)
        pred = LatencyPredictor.from_dict(d)
        assert pred.target['shape'] == [256, 256] and pred.target['threads'] == 1
        assert pred.template['bbox_head']['feat_channels'] == 96  # the demo template
        from gpunet_mm.models.tiers import get_tier

        ms = pred.predict(get_tier('GPUNet-0'))
        assert 5 < ms < 500
    bench = LatencyPredictor.from_dict(json.load(open(BENCH_JSON)))
    demo = load_demo_predictor()
    archs = sample_random_archs(5, seed=9)
    assert np.allclose(bench.predict_many(archs), demo.predict_many(archs))
    # list form, and clear errors for another version's features
    d = demo.to_dict()
    listed = dict(d, coef=list(d['coef'].values()))
    assert np.allclose(LatencyPredictor.from_dict(listed).coef, demo.coef)
    old = dict(d, coef={k: v for k, v in d['coef'].items() if k != 'nms_kwork'}, features=None)
    with pytest.raises(ValueError, match=r"missing \['nms_kwork'\]"):
        LatencyPredictor.from_dict(old)
    with pytest.raises(ValueError, match='finite and >= 0'):
        LatencyPredictor.from_dict(dict(d, coef={k: -1.0 for k in d['coef']}))


def test_fit_from_cache_selects_the_target(tmp_path):
    demo = latency.resolve_template(DEMO_CFG)
    target = LatencyTarget(threads=1, shape=(256, 256), clock='cpu')
    other = LatencyTarget(threads=2, shape=(256, 256), clock='wall')
    archs = sample_random_archs(30, seed=4)
    true = np.linspace(0.2, 1.0, len(FEATURES))
    cache = LatencyCache(str(tmp_path / 'c.sqlite'))
    for a in archs:
        ms = float(arch_features(a, (256, 256), demo, target=target.to_dict()) @ true)
        for t, scale in ((target, 1.0), (other, 3.0)):  # another target: 3x slower
            res = LatencyResult.from_times(
                [ms * scale],
                backend='onnxruntime',
                warmup=0,
                precision='fp32',
                batch=1,
                shape=(256, 256),
                env=dict(arch=a.to_dict()),
            )
            cache.put(latency.latency_key(a, demo, t), res)
    out = str(tmp_path / 'p.json')
    pred = fit_from_cache(cache.path, DEMO_CFG, target.to_dict(), out_file=out)
    want = [
        float(arch_features(a, (256, 256), demo, target=target.to_dict()) @ true) for a in archs
    ]
    assert np.allclose(LatencyPredictor.load(out).predict_many(archs), want, rtol=1e-3)
    assert pred.fit_stats['n'] == 30
    with pytest.raises(ValueError, match='holds 0 usable measurements'):
        fit_from_cache(cache, DEMO_CFG, LatencyTarget(threads=1, shape=(320, 320)))


def test_benchmark_creates_out_dir_before_measuring(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'benchmark_deploy', os.path.join(ROOT, 'benchmarks/benchmark_deploy.py')
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / 'new' / 'results'
    seen = {}

    def fake(args):
        seen['out_exists'] = out.is_dir()
        seen['threads'] = args.threads
        return {'ok': 1}

    monkeypatch.setattr(bench, 'bench_predictor', fake)
    monkeypatch.setattr(
        sys,
        'argv',
        ['x', '--part', 'predictor', '--out-dir', str(out), '--work-dir', str(tmp_path / 'w')],
    )
    bench.main()
    assert seen == {'out_exists': True, 'threads': 1}
    assert json.load(open(out / 'deploy_cpu_predictor.json')) == {'ok': 1}


def test_channel_block_rounds_channels_and_fit_finds_it():
    demo = latency.resolve_template(DEMO_CFG)
    # the last row (64 channels, read by the neck): 48, 56 and 64 channels
    narrow, arch, wide = (_widen(_tiny_arch(), 4, d) for d in (-16, -8, 0))
    f = [arch_features(a, (256, 256), demo, channel_block=16) for a in (narrow, arch, wide)]
    # in 16-channel blocks, 56 channels cost what 64 do, and more than 48
    assert np.allclose(f[1], f[2]) and np.any(f[1] > f[0])
    assert not np.allclose(
        arch_features(arch, (256, 256), demo), arch_features(wide, (256, 256), demo)
    )
    with pytest.raises(ValueError, match='channel_block: got 0'):
        arch_features(arch, (256, 256), demo, channel_block=0)
    # latencies generated with 16-channel blocks: the fit picks block 16 and is exact
    archs = sample_random_archs(40, seed=11)
    true = np.linspace(0.5, 2.0, len(FEATURES))
    lat = [float(arch_features(a, (256, 256), demo, channel_block=16) @ true) for a in archs]
    pred = LatencyPredictor(template=demo, target=dict(shape=[256, 256]))
    pred.fit(archs[:30], lat[:30], channel_blocks=(1, 8, 16))
    assert pred.channel_block == 16
    assert np.allclose(pred.predict_many(archs[30:]), lat[30:], rtol=1e-3)
    assert LatencyPredictor.from_dict(pred.to_dict()).channel_block == 16


# --------------------------------------------------------------------------- the CPU clock
def _conv_onnx(path):
    """A small conv stack (a few ms a run) exported to ONNX with an ``input`` tensor."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1),
    ).eval()
    torch.onnx.export(
        net, (torch.rand(1, 3, 96, 96),), path, dynamo=False, opset_version=17,
        input_names=['input'],
    )  # fmt: skip
    return path


@pytest.mark.parametrize('threads', [1, 2])
def test_reported_latency_is_wall_latency_at_1_and_2_threads(threads, tmp_path):
    """What a target reports is the wall latency of a run, whatever its thread count: the
    CPU clock (one thread) agrees with the wall clock measured around the same runs, and a
    CPU clock over two threads, whose CPU time adds both threads' time, is refused."""
    path = _conv_onnx(str(tmp_path / 'net.onnx'))
    kw = dict(threads=threads, iters=15, warmup=3)
    if threads == 1:
        cpu = latency.time_onnx(path, LatencyTarget(clock='cpu', **kw), (96, 96))
        # the wall clock around the very runs the CPU clock timed (same session, same runs)
        assert cpu.env['clock'] == 'process_cpu'
        # one thread: CPU time is at most the wall time of the same run (equal on a quiet
        # machine; neighbours' load makes wall grow), never the sum over threads above it
        ratio = cpu.median_ms / cpu.env['wall_median_ms']
        assert 0.0 < ratio <= 1.05, ratio
    else:
        with pytest.raises(ValueError, match=r"clock 'cpu' needs threads=1: with threads=2"):
            LatencyTarget(clock='cpu', **kw)
        with pytest.raises(ValueError, match=r'threads=None \(all cores\)'):
            LatencyTarget(clock='cpu', iters=1)
    import time

    target = LatencyTarget(clock='wall', **kw)
    backend = target.make_backend()
    sess = backend.session(path)
    t0 = time.perf_counter()
    wall = latency.time_onnx(path, target, (96, 96), session=sess, backend=backend)
    per_run_ms = (time.perf_counter() - t0) * 1e3 / (kw['iters'] + kw['warmup'])
    assert wall.env['clock'] == 'wall' and wall.env['threads'] == threads
    # the timed runs are the bracket's runs: 15 of its 18 runs, so their mean cannot exceed
    # 18/15 of the bracket's per-run time; the lower bound leaves room for slow warm-up
    # runs. Mean against mean, not the median, so a few runs slowed by neighbours' load
    # (they move the mean of both sides alike) cannot fail it.
    assert 0.3 * per_run_ms < wall.mean_ms <= 1.2 * per_run_ms * 1.001
    assert 0.0 < wall.median_ms <= wall.p90_ms


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(backend='torch', clock='cpu', threads=1), "got backend 'torch' on 'cpu'"),
        (dict(device='cuda', clock='cpu', threads=1), "'cuda': use clock='wall'"),
    ],
)
def test_cpu_clock_refuses_what_it_cannot_measure(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LatencyTarget(**kwargs)
