"""ONNX Runtime end-to-end outputs vs mmdet's model.predict (boxes, scores, labels)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gpunet_mm.deploy import DeployConfig, export_onnx
from gpunet_mm.deploy.parity import load_images, match_detections, torch_predict

from .conftest import seeded_detector

DETECTORS = ('retinanet_gpunet-0_demo', 'retinanet_gpunet-2_small', 'fcos_gpunet-2_small')


def _run(path, raw):
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return sess.run(None, {'input': raw.numpy()})


def _assert_parity(model, images, path, shape, top_k=20):
    raw, packed = load_images(images, shape)
    ref = torch_predict(model, packed)
    dets, labels = _run(path, raw)
    assert dets.shape[0] == len(images) and dets.shape[2] == 5
    assert labels.shape == dets.shape[:2] and labels.dtype == np.int64
    for b, r in enumerate(ref):
        # meaningful: the seeded head gives many confident, distinct detections
        assert len(r['scores']) >= 10, 'too few reference detections for a real comparison'
        m = match_detections(r, dets[b], labels[b], top_k=top_k)
        assert m['recall'] >= 0.95, m
        assert m['max_box_diff'] < 0.05 and m['max_score_diff'] < 1e-4, m
        # padding contract: zero boxes and -1 labels after the valid detections
        valid = labels[b] >= 0
        assert not valid[valid.argmin() :].any() or valid.all()
        assert np.all(dets[b][~valid] == 0)


@pytest.mark.parametrize('name', DETECTORS)
def test_static_batch1_parity(name, demo_images, tmp_path):
    model = seeded_detector(name, demo_images)
    path = str(tmp_path / 'm.onnx')
    summary = export_onnx(model, DeployConfig(input_shape=(256, 256)), path)
    assert summary['nms'] == 'NonMaxSuppression'
    assert summary['op_counts'].get('NonMaxSuppression') == 1
    assert summary['head'] == ('point' if 'fcos' in name else 'anchor')
    # static: no shape-dependent prior generation left in the graph
    assert summary['op_counts'].get('Range', 0) <= 1  # only arange(batch) in the NMS gather
    _assert_parity(model, demo_images[:1], path, (256, 256))


def test_static_batch2_parity(demo_images, tmp_path):
    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    path = str(tmp_path / 'm.onnx')
    export_onnx(model, DeployConfig(input_shape=(256, 256), batch_size=2), path)
    _assert_parity(model, demo_images[:2], path, (256, 256))


@pytest.mark.parametrize('name', DETECTORS)
def test_dynamic_parity_two_shapes_two_batches(name, demo_images, tmp_path):
    model = seeded_detector(name, demo_images)
    path = str(tmp_path / 'm.onnx')
    summary = export_onnx(model, DeployConfig(input_shape=(256, 256), dynamic=True), path)
    assert summary['inputs']['input'][0] == 'batch'
    assert summary['op_counts']['Range'] >= 10  # priors generated from the feature shapes
    _assert_parity(model, demo_images[:2], path, (256, 256))
    _assert_parity(model, demo_images[2:3], path, (320, 288))


def test_fp16_graph_has_half_weights_fp32_io_and_close_outputs(demo_images, tmp_path):
    """The FP16 graph TensorRT 11 needs: half network, fp32 I/O, same top detections."""
    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    path = str(tmp_path / 'fp16.onnx')
    export_onnx(model, DeployConfig(input_shape=(256, 256), precision='fp16'), path)
    proto = onnx.load(path)
    conv_w = {n.input[1] for n in proto.graph.node if n.op_type == 'Conv'}
    types = {t.data_type for t in proto.graph.initializer if t.name in conv_w}
    assert types == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    raw, packed = load_images(demo_images[:1], (256, 256))
    ref = torch_predict(model, packed)[0]
    dets, labels = _run(path, raw)
    m = match_detections(ref, dets[0], labels[0], top_k=20, iou_thr=0.9, score_tol=0.01)
    assert m['recall'] >= 0.8, m


def test_wrapper_runs_eagerly_like_the_graph(demo_images):
    """The PyTorch reference NMS gives the same fixed-size outputs as ONNX Runtime."""
    from gpunet_mm.deploy import make_wrapper

    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    raw, packed = load_images(demo_images[:1], (256, 256))
    wrapper = make_wrapper(model, DeployConfig(input_shape=(256, 256)))
    with torch.no_grad():
        dets, labels = wrapper(raw)
    ref = torch_predict(model, packed)[0]
    m = match_detections(ref, dets[0].numpy(), labels[0].numpy(), top_k=50)
    assert m['recall'] == 1.0 and m['max_box_diff'] < 1e-3


@pytest.mark.parametrize(
    'coder_opts',
    [
        dict(),
        dict(target_means=(0.1, -0.1, 0.0, 0.2), target_stds=(0.5, 0.5, 2.0, 2.0)),
        dict(add_ctr_clamp=True, ctr_clamp=8),
        dict(clip_border=False),
    ],
)
def test_anchor_decoding_follows_the_coder_settings(coder_opts, demo_images):
    """Extreme deltas (past the wh-ratio clip, off the image) decode as the coder does."""
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    from gpunet_mm.deploy import make_wrapper

    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    original = model.bbox_head.bbox_coder
    coder = DeltaXYWHBBoxCoder(**coder_opts)
    model.bbox_head.bbox_coder = coder
    try:
        wrapper = make_wrapper(model, DeployConfig(input_shape=(256, 256)))
    finally:
        model.bbox_head.bbox_coder = original
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 50, 2, generator=gen) * 256
    anchors = torch.cat([xy, xy + 8 + torch.rand(2, 50, 2, generator=gen) * 64], dim=-1)
    deltas = torch.randn(2, 50, 4, generator=gen) * 6  # |dw| up to ~20 > log(1000/16)
    max_xy = torch.tensor([256.0, 192.0, 256.0, 192.0])
    got = wrapper._decode_anchor(anchors, deltas, max_xy)
    for b in range(2):
        want = coder.decode(anchors[b], deltas[b], max_shape=(192, 256))
        torch.testing.assert_close(got[b], want)
    assert (deltas[..., 2:].abs() > 5).any()  # the clip was exercised
