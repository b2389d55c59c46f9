"""Latency backends (ONNX Runtime, torch) and the two CLIs, end to end on CPU."""

import json
import os

import pytest
import torch

from gpunet_mm.deploy.backends import BackendUnavailableError, OnnxRuntimeBackend, TorchBackend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CFG = os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py')


@pytest.fixture(scope='module')
def tiny_onnx(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tiny') / 'tiny.onnx')
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), path, dynamo=False, input_names=['input'])
    return path


def test_onnxruntime_result_and_environment(tiny_onnx):
    res = OnnxRuntimeBackend(threads=1).measure(tiny_onnx, shape=(32, 32), iters=7, warmup=2)
    assert res.iters == 7 and 0 < res.min_ms <= res.median_ms <= res.p90_ms
    assert res.mean_ms > 0 and res.batch == 1 and res.shape == (32, 32)
    env = res.env
    assert env['backend'] == 'onnxruntime' and env['threads'] == 1 and env['onnxruntime']
    assert env['providers'] == ['CPUExecutionProvider'] and env['device'].startswith('cpu:')


def test_onnxruntime_cuda_without_provider_is_clear():
    import onnxruntime as ort

    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('CUDA provider present')
    with pytest.raises(BackendUnavailableError, match='onnxruntime-gpu'):
        OnnxRuntimeBackend(device='cuda')


def test_backends_are_registered_and_a_plugin_one_builds_by_name():
    from gpunet_mm.deploy import LatencyTarget
    from gpunet_mm.deploy.backends import LATENCY_BACKENDS, TensorRTBackend, get_backend
    from gpunet_mm.schema import LatencyTargetSettings, SchemaError, validate

    assert LATENCY_BACKENDS.module_dict == dict(
        onnxruntime=OnnxRuntimeBackend, tensorrt=TensorRTBackend, torch=TorchBackend
    )

    @LATENCY_BACKENDS.register_module(name='fake')
    class FakeBackend(OnnxRuntimeBackend):
        name = 'fake'

    try:
        assert type(get_backend('fake', threads=1)) is FakeBackend
        assert LatencyTarget(backend='fake').backend == 'fake'
        # the schema of a config's latency_target reads the same registry (no literal list)
        assert validate(LatencyTargetSettings, dict(backend='fake'), 'latency_target').backend
        with pytest.raises(ValueError, match=r"got 'tvm'; allowed: onnxruntime.*, fake \("):
            get_backend('tvm')
        with pytest.raises(
            SchemaError, match="backend: got 'tvm'; allowed: fake, onnxruntime, tensorrt, torch$"
        ):
            validate(LatencyTargetSettings, dict(backend='tvm'), 'latency_target')
    finally:
        LATENCY_BACKENDS.module_dict.pop('fake')
    for build in (
        lambda: LatencyTarget(backend='fake'),
        lambda: validate(LatencyTargetSettings, dict(backend='fake'), 'latency_target'),
    ):
        with pytest.raises(
            ValueError, match="backend: got 'fake'; allowed: onnxruntime, tensorrt, torch$"
        ):
            build()


def test_torch_backend_eager_and_bad_modes():
    net = torch.nn.Conv2d(3, 4, 3)
    res = TorchBackend(threads=1).measure(net, shape=(32, 32), iters=5, warmup=1)
    assert res.backend == 'torch-eager' and res.median_ms > 0
    assert res.env['torch'] == torch.__version__
    with pytest.raises(ValueError, match="'jit'.*eager, compile, cudagraph"):
        TorchBackend(mode='jit')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='cudagraph needs device="cuda"'):
            TorchBackend(mode='cudagraph')


def test_time_calls_warms_up_then_times_each_call(monkeypatch):
    """The one timing loop of every backend: wall clock on CPU, CUDA events on a stream."""
    from gpunet_mm.deploy.backends.base import time_calls_ms

    calls = []
    times = time_calls_ms(lambda: calls.append(1), iters=4, warmup=3)
    assert len(calls) == 7 and len(times) == 4 and all(t >= 0 for t in times)
    assert len(time_calls_ms(lambda: None, iters=2, warmup=-1)) == 2

    # the CUDA path without a GPU: events recorded on the given stream around each call
    log = []

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing
            self.t = None

        def record(self, stream=None):
            log.append(('record', stream))
            self.t = len(log)

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return float(end.t - self.t)

    class Stream:
        def synchronize(self):
            log.append(('sync', 'stream'))

    monkeypatch.setattr(torch.cuda, 'Event', Event)
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda: log.append(('sync', 'device')))
    s = Stream()
    times = time_calls_ms(lambda: log.append(('run', None)), iters=2, warmup=1, cuda=True, stream=s)
    assert times == [2.0, 2.0]  # start, run, end: two log entries apart
    assert log[:2] == [('run', None), ('sync', 'stream')]  # warm-up done before timing
    assert log[2:5] == [('record', s), ('run', None), ('record', s)]
    log.clear()
    time_calls_ms(lambda: None, iters=1, warmup=0, cuda=True)
    assert log == [('sync', 'device'), ('record', None), ('record', None)]


def test_ort_and_torch_are_timed_in_alternating_rounds():
    """The benchmarks' side-by-side timing: ORT round, PyTorch round, ... on the same input;
    medians over the rounds and their ratio (fake backends: no clock involved)."""
    from types import SimpleNamespace

    from gpunet_mm.deploy.backends import time_ort_vs_torch

    log = []

    class Fake:
        def __init__(self, name, times):
            self.name, self.times = name, iter(times)

        def session(self, path):
            return f'session of {path}'

        def measure(self, what, **kw):
            log.append((self.name, kw['iters'], kw.get('session')))
            assert kw['shape'] == (8, 8) and kw['warmup'] == 2
            return SimpleNamespace(median_ms=next(self.times))

    raw = torch.zeros(1, 3, 8, 8)
    ort_b, torch_b = Fake('ort', [1.0, 3.0, 2.0]), Fake('torch', [4.0, 9.0, 6.0])
    out = time_ort_vs_torch(torch.nn.Identity(), 'm.onnx', raw, (8, 8), ort_b, torch_b, 3, 5)
    assert [name for name, *_ in log] == ['ort', 'torch'] * 3
    assert {s for name, _, s in log if name == 'ort'} == {'session of m.onnx'}
    assert out['ort_median_ms'] == 2.0 and out['torch_predict_median_ms'] == 6.0
    assert out['speedup_ort_vs_torch'] == 3.0 and out['torch_rounds_ms'] == [4.0, 9.0, 6.0]


def test_deploy_cli_onnxruntime(tmp_path, capsys, demo_images):
    """The CLI's ONNX on a detector that detects (the seeded head of ``deploy.parity``)
    matches ``model.predict`` on real images; an untrained one would output nothing."""
    import numpy as np
    import onnxruntime as ort

    from gpunet_mm.apis.checkpoint import arch_meta
    from gpunet_mm.deploy.parity import load_images, match_detections, torch_predict
    from tools.deploy import main

    from .conftest import seeded_detector

    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    ckpt = str(tmp_path / 'seeded.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(gpunet_archs=arch_meta(model))), ckpt)
    main([DEMO_CFG, ckpt, '--shape', '256', '256', '--work-dir', str(tmp_path)])
    summary = json.load(open(tmp_path / 'deploy_summary.json'))
    assert summary['outputs']['dets'] == [1, 50, 5]
    assert summary['verify']['max_abs_diff'] < 1e-3 and summary['verify']['labels_equal'] == 1
    assert summary['arch_hash'] and summary['export_seconds'] > 0
    assert 'summary:' in capsys.readouterr().out
    sess = ort.InferenceSession(str(tmp_path / 'end2end.onnx'), providers=['CPUExecutionProvider'])
    raw, packed = load_images(demo_images[:2], (256, 256))
    ref = torch_predict(model, packed)
    for b, image in enumerate(raw):
        dets, labels = sess.run(None, {'input': image[None].numpy()})
        assert len(ref[b]['scores']) >= 10, 'the seeded head must give real detections'
        assert np.sum(labels[0] >= 0) >= 10
        m = match_detections(ref[b], dets[0], labels[0], top_k=20)
        assert m['recall'] >= 0.95 and m['max_box_diff'] < 0.05, m


def test_deploy_cli_tensorrt_dry_run_and_bad_shape(tmp_path):
    from gpunet_mm.deploy.backends.tensorrt import trt_version
    from tools.deploy import main

    argv = [DEMO_CFG, '--backend', 'tensorrt', '--shape', '256', '256', '--fp16', '--dynamic']
    argv += ['--work-dir', str(tmp_path)]
    if trt_version() is None:  # no engine: an error exit, with the ONNX and plans kept
        with pytest.raises(SystemExit, match='no TensorRT engine built: TensorRT is not'):
            main(argv)
    else:
        main(argv)
    summary = json.load(open(tmp_path / 'deploy_summary.json'))
    assert summary['nms'] == 'EfficientNMS_TRT'
    assert (tmp_path / 'end2end.onnx').is_file()
    trt = summary['tensorrt']
    if trt['installed'] is None:
        assert trt['plans']['11.4.0']['strongly_typed']
        assert trt['plans']['10.13.0']['strongly_typed']  # an fp16 graph builds typed on 10.x
        assert trt['plans']['11.4.0']['profiles']['input']['max'] == [2, 3, 512, 512]
    with pytest.raises(SystemExit, match='stride 32'):
        main([DEMO_CFG, '--shape', '250', '256', '--work-dir', str(tmp_path / 'x')])
    with pytest.raises(SystemExit, match='onnxruntime, tensorrt'):
        main([DEMO_CFG, '--backend', 'openvino', '--work-dir', str(tmp_path / 'y')])


def test_benchmark_cli_table_json_and_cache(tmp_path, capsys):
    from tools.benchmark_latency import main

    out = tmp_path / 'rows.json'
    argv = [
        DEMO_CFG,
        '--shape',
        '256',
        '256',
        '--iters',
        '3',
        '--warmup',
        '1',
        '--cache',
        str(tmp_path / 'c.sqlite'),
        '--work-dir',
        str(tmp_path),
        '--json',
        str(out),
    ]
    main(argv)
    first = capsys.readouterr().out
    rows = json.load(open(out))
    assert len(rows) == 1 and rows[0]['median_ms'] > 0 and not rows[0]['cached']
    assert 'retinanet_gpunet-0_fpn_demo' in first and 'median' in first
    main(argv)
    rows2 = json.load(open(out))
    assert rows2[0]['cached'] and rows2[0]['median_ms'] == rows[0]['median_ms']
    with pytest.raises(SystemExit, match="'tvm'"):
        main([DEMO_CFG, '--backend', 'tvm'])
    # a config that fails loses no row already measured: the others are printed and written,
    # and the tool exits non-zero naming the one that failed
    bad = tmp_path / 'missing_config.py'
    with pytest.raises(SystemExit, match=r'1 of 2 config\(s\) failed: .*missing_config\.py'):
        main([str(bad)] + argv)
    rows3 = json.load(open(out))
    assert [r.get('error') is None for r in rows3] == [False, True]
    assert rows3[1]['median_ms'] == rows[0]['median_ms'] and rows3[1]['cached']
    assert 'FAILED' in capsys.readouterr().out
