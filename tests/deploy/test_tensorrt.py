"""TensorRT: the export flavour and the engine build plan run anywhere; real builds skip."""

import onnx
import pytest
import torch

from gpunet_mm.deploy import DeployConfig, export_onnx, make_wrapper
from gpunet_mm.deploy.backends import BackendUnavailableError, TensorRTBackend, get_backend
from gpunet_mm.deploy.backends.tensorrt import plan_engine_build, plan_for_onnx, trt_version

from .conftest import seeded_detector

HAS_TRT = trt_version() is not None and torch.cuda.is_available()


@pytest.fixture(scope='module')
def trt_onnx(demo_images, tmp_path_factory):
    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    path = str(tmp_path_factory.mktemp('trt') / 'trt.onnx')
    cfg = DeployConfig(backend='tensorrt', input_shape=(256, 256), dynamic=True)
    summary = export_onnx(model, cfg, path)
    return path, summary, model


def test_tensorrt_export_uses_efficient_nms_plugin(trt_onnx):
    path, summary, _ = trt_onnx
    assert summary['nms'] == 'EfficientNMS_TRT'
    proto = onnx.load(path)
    nodes = [n for n in proto.graph.node if n.op_type == 'EfficientNMS_TRT']
    assert len(nodes) == 1 and not any(n.op_type == 'NonMaxSuppression' for n in proto.graph.node)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs['max_output_boxes'] == 50 and attrs['plugin_version'] == b'1'
    assert attrs['score_activation'] == 0 and attrs['background_class'] == -1
    # the head's test_cfg.score_thr (0.05) is applied before NMS (scores at or below it are
    # zeroed, as mmdet thresholds the class score before score factors), so the plugin
    # keeps every positive score
    assert abs(attrs['iou_threshold'] - 0.5) < 1e-6 and attrs['score_threshold'] == 0.0
    assert [o.name for o in proto.graph.output] == ['dets', 'labels']


def test_efficient_nms_reference_matches_onnx_nms(trt_onnx, demo_images):
    """Both NMS flavours give the same detections (PyTorch references of each operator)."""
    _, _, model = trt_onnx
    from gpunet_mm.deploy.parity import load_images

    raw, _ = load_images(demo_images[:2], (256, 256))
    with torch.no_grad():
        d1, l1 = make_wrapper(model, DeployConfig(input_shape=(256, 256)))(raw)
        d2, l2 = make_wrapper(model, DeployConfig(backend='tensorrt', input_shape=(256, 256)))(raw)
    assert (l1 >= 0).sum() > 10
    assert torch.equal(l1, l2)
    assert torch.allclose(d1, d2, atol=1e-4)


def test_plan_dry_run_by_version(trt_onnx):
    path, _, _ = trt_onnx
    p11 = plan_for_onnx(path, 'fp32', '11.4.0')
    assert p11.strongly_typed and p11.network_flags == ['STRONGLY_TYPED'] and not p11.builder_flags
    assert p11.plugins == ['EfficientNMS_TRT'] and p11.load_plugin_library
    prof = p11.profiles['input']
    assert prof['opt'] == [1, 3, 256, 256] and prof['min'] == [1, 3, 128, 128]
    assert prof['max'] == [2, 3, 512, 512]
    with pytest.raises(ValueError, match='FP16 ONNX graph'):
        plan_for_onnx(path, 'fp16', '11.4.0')
    p10 = plan_for_onnx(path, 'fp16', '10.13.0')
    assert p10.builder_flags == ['FP16'] and not p10.strongly_typed


def test_plan_rules_without_onnx():
    p = plan_engine_build('11.4.0', 'fp16', onnx_precision='fp16')
    assert p.strongly_typed and p.builder_flags == []
    p = plan_engine_build('10.8.0', 'fp16', onnx_precision='fp16')
    assert p.strongly_typed and p.builder_flags == []
    p = plan_engine_build('10.8.0', 'int8', has_qdq=True, onnx_precision='fp32')
    assert p.strongly_typed and p.builder_flags == []
    with pytest.raises(ValueError, match='QuantizeLinear'):
        plan_engine_build('11.4.0', 'int8')
    with pytest.raises(ValueError, match='no calibrators'):
        plan_engine_build('11.0.1', 'int8')
    with pytest.raises(ValueError, match=r'supported majors \(10, 11\)'):
        plan_engine_build('8.6.1', 'fp16')
    with pytest.raises(ValueError, match="'tf32'"):
        plan_engine_build('10.8.0', 'tf32')
    p = plan_engine_build('10.8.0', 'fp32', has_onnx_nms=True, plugins=())
    assert not p.load_plugin_library and any('INMSLayer' in n for n in p.notes)


@pytest.mark.skipif(HAS_TRT, reason='TensorRT is installed: the missing-TensorRT path is moot')
def test_missing_tensorrt_is_a_clear_message():
    with pytest.raises(BackendUnavailableError, match=r'pip install "gpunet_mm\[trt\]"'):
        get_backend('tensorrt')
    with pytest.raises(BackendUnavailableError, match='TensorRT'):
        TensorRTBackend()


@pytest.mark.skipif(not HAS_TRT, reason='needs TensorRT 10/11 and a CUDA GPU')
def test_tensorrt_build_and_measure(trt_onnx, tmp_path):
    path, _, _ = trt_onnx
    res = TensorRTBackend(cache_dir=str(tmp_path)).measure(
        path, shape=(256, 256), iters=20, warmup=5, precision='fp32'
    )
    assert res.median_ms > 0 and res.env['tensorrt'] == trt_version()
    assert res.env['build_plan']['plugins'] == ['EfficientNMS_TRT']
