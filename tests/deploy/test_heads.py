"""Every supported dense head exports end to end and matches mmdet's ``predict``.

Fast tests use demo-width detectors with a seeded classification layer (random weights,
confident distinct scores); the slow ones a few-epoch trained detector per head family,
shared by the whole session (:func:`trained`).
"""

import copy
import os

import numpy as np
import onnxruntime as ort
import pytest
import torch

from gpunet_mm.deploy import DeployConfig, UnsupportedModelError, export_onnx, make_wrapper
from gpunet_mm.deploy.heads import HEAD_EXPORTERS, check_model_cfg, grid_sample_deform_sampling
from gpunet_mm.deploy.parity import load_images, match_detections, torch_predict

from .conftest import ROOT, seeded_detector

NEW_HEADS = {
    'atss_gpunet-0_demo': 'ATSSHead',
    'gfl_gpunet-0_demo': 'GFLHead',
    'tood_gpunet-0_demo': 'TOODHead',
    'rtmdet-tiny_gpunet-0_demo': 'RTMDetSepBNHead',
    'yolox-s_gpunet-0_demo': 'YOLOXHead',
    'faster-rcnn_gpunet-0_demo': 'Shared2FCBBoxHead',
}


def _ort(path, raw):
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return sess.run(None, {'input': raw.numpy()})


def assert_parity(model, images, path, shape, top_k=20, min_ref=10):
    """ORT vs ``model.predict``: the top detections found with equal labels, boxes within
    1e-3 of the image size, scores within 1e-4."""
    raw, packed = load_images(images, shape)
    ref = torch_predict(model, packed)
    dets, labels = _ort(path, raw)[:2]  # (masks, when exported, come third)
    assert labels.shape == dets.shape[:2] and labels.dtype == np.int64
    tol = 1e-3 * max(shape)
    for b, r in enumerate(ref):
        assert len(r['scores']) >= min_ref, 'too few reference detections for a real comparison'
        m = match_detections(r, dets[b], labels[b], top_k=top_k)
        assert m['recall'] >= 0.95, m
        assert m['max_box_diff'] <= tol and m['max_score_diff'] < 1e-4, m
    return m


# ~15-25 s each on 2 shared cores: two in the default suite, the rest marked slow
_FAST = ('rtmdet-tiny_gpunet-0_demo', 'faster-rcnn_gpunet-0_demo')


@pytest.mark.parametrize(
    'name',
    [n if n in _FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(NEW_HEADS)],
)
def test_seeded_head_exports_and_matches_predict(name, demo_images, tmp_path):
    model = seeded_detector(name, demo_images)
    head = model.roi_head.bbox_head if hasattr(model, 'roi_head') else model.bbox_head
    assert type(head).__name__ == NEW_HEADS[name]
    path = str(tmp_path / 'm.onnx')
    summary = export_onnx(model, DeployConfig(input_shape=(256, 256)), path)
    # two-stage: the RPN's per-level NMS, then the detections'
    assert summary['op_counts'].get('NonMaxSuppression') == (2 if 'rcnn' in name else 1)
    if 'rcnn' in name:
        assert summary['op_counts'].get('RoiAlign') == 4  # one per RoI-extractor level
    assert summary['outputs']['dets'] == [1, summary['post_processing']['max_detections'], 5]
    assert_parity(model, demo_images[:1], path, (256, 256))


def mask_head_reference(model, packed, boxes, labels):
    """mmdet's own mask branch on given detections, as ``predict_mask`` runs it before
    pasting: the mask RoI extractor at each box, ``FCNMaskHead``, the sigmoid of the
    detection's class channel."""
    from mmdet.structures.bbox import bbox2roi

    roi = model.roi_head
    with torch.no_grad():
        feats = model.extract_feat(model.data_preprocessor(packed, False)['inputs'])
        ext = roi.mask_roi_extractor
        pred = roi.mask_head(ext(feats[: ext.num_inputs], bbox2roi([boxes])))
    return pred[torch.arange(len(boxes)), labels].sigmoid().numpy()


@pytest.mark.slow
def test_mask_rcnn_masks_are_the_mask_heads(demo_images, tmp_path):
    """``masks=True``: a third output, each detection's 28x28 RoI mask, equal to PyTorch's
    mask head on the same boxes; the boxes still match ``predict``."""
    model = seeded_detector('mask-rcnn_gpunet-0_demo', demo_images)
    path = str(tmp_path / 'm.onnx')
    summary = export_onnx(model, DeployConfig(input_shape=(256, 256), masks=True), path)
    n = summary['post_processing']['max_detections']
    assert summary['outputs']['masks'] == [1, n, 28, 28]
    assert_parity(model, demo_images[:1], path, (256, 256))
    raw, packed = load_images(demo_images[:1], (256, 256))
    dets, labels, masks = _ort(path, raw)
    keep = labels[0] >= 0
    assert keep.sum() >= 10
    want = mask_head_reference(
        model, packed, torch.from_numpy(dets[0, keep, :4]), torch.from_numpy(labels[0, keep])
    )
    np.testing.assert_allclose(masks[0, keep], want, atol=1e-4)
    assert 0.01 < float(masks[0, keep].std())  # real masks, not a constant


def test_masks_need_a_mask_head(demo_images):
    model = seeded_detector('faster-rcnn_gpunet-0_demo', demo_images)
    with pytest.raises(UnsupportedModelError, match='masks=True: FasterRCNN has no mask head'):
        make_wrapper(model, DeployConfig(input_shape=(256, 256), masks=True))
    with pytest.raises(ValueError, match="masks.*'yes'"):
        DeployConfig(masks='yes')


def test_tood_grid_sample_is_mmcv_deform_sampling():
    """TOOD's deformable sampling, rewritten for export, reads what mmcv's kernel reads
    (offsets inside, between and outside the map)."""
    from mmdet.models.dense_heads import TOODHead

    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 4, 9, 7, generator=g)
    offset = torch.randn(2, 8, 9, 7, generator=g) * 3
    want = TOODHead.deform_sampling(None, feat, offset)
    got = grid_sample_deform_sampling(feat, offset)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_tood_dynamic_export_is_refused_with_the_reason(demo_images):
    model = seeded_detector('tood_gpunet-0_demo', demo_images)
    with pytest.raises(UnsupportedModelError, match='TOODHead.*dynamic=False'):
        make_wrapper(model, DeployConfig(input_shape=(256, 256), dynamic=True))


@pytest.mark.slow
@pytest.mark.parametrize(
    'name', ['rtmdet-tiny_gpunet-0_demo', 'gfl_gpunet-0_demo', 'faster-rcnn_gpunet-0_demo']
)
def test_dynamic_shapes_and_batch(name, demo_images, tmp_path):
    model = seeded_detector(name, demo_images)
    path = str(tmp_path / 'm.onnx')
    export_onnx(model, DeployConfig(input_shape=(256, 256), dynamic=True), path)
    assert_parity(model, demo_images[:2], path, (256, 256))
    assert_parity(model, demo_images[2:3], path, (320, 288))


def test_registry_names_each_head_family():
    assert {
        'RetinaHead', 'FCOSHead', 'ATSSHead', 'GFLHead', 'TOODHead', 'RTMDetHead',
        'RTMDetSepBNHead', 'YOLOXHead',
    } <= set(HEAD_EXPORTERS)  # fmt: skip


def test_detector_without_export_path_gets_the_clear_error_from_its_config():
    cascade = dict(type='CascadeRCNN', rpn_head=dict(type='RPNHead'),
                   roi_head=dict(type='CascadeRoIHead'))  # fmt: skip
    with pytest.raises(
        UnsupportedModelError, match=r'detector CascadeRCNN .*FasterRCNN.*YOLOXHead'
    ):
        check_model_cfg(cascade)
    with pytest.raises(UnsupportedModelError, match=r'model.roi_head \(HybridTaskCascadeRoIHead'):
        check_model_cfg(dict(type='MaskRCNN', rpn_head=dict(type='RPNHead'),
                             roi_head=dict(type='HybridTaskCascadeRoIHead')))  # fmt: skip
    with pytest.raises(UnsupportedModelError, match=r'model.bbox_head \(PAAHead\)'):
        check_model_cfg(dict(type='PAA', bbox_head=dict(type='PAAHead')))
    check_model_cfg(dict(type='mmdet.RTMDet', bbox_head=dict(type='RTMDetSepBNHead')))
    check_model_cfg(dict(type='FasterRCNN', rpn_head=dict(type='RPNHead'),
                         roi_head=dict(type='StandardRoIHead')))  # fmt: skip


def test_built_detector_without_export_path_fails_clearly_in_make_wrapper(demo_images):
    """A built two-stage detector with an unsupported RoI head: the exporter's error, not an
    AttributeError on ``model.bbox_head``."""
    model = seeded_detector('faster-rcnn_gpunet-0_demo', demo_images)
    bad = copy.deepcopy(model)
    bad.roi_head = torch.nn.Identity()
    with pytest.raises(UnsupportedModelError, match=r'model.roi_head \(Identity\) of FasterRCNN'):
        make_wrapper(bad, DeployConfig(input_shape=(256, 256)))


def test_softmax_and_unknown_coder_are_named(demo_images):
    from mmdet.models.task_modules.coders import DistancePointBBoxCoder

    model = seeded_detector('atss_gpunet-0_demo', demo_images)
    bad = copy.deepcopy(model)
    bad.bbox_head.bbox_coder = DistancePointBBoxCoder()
    with pytest.raises(UnsupportedModelError, match=r'DistancePointBBoxCoder.*DeltaXYWHBBoxCoder'):
        make_wrapper(bad, DeployConfig(input_shape=(256, 256)))
    bad.bbox_head.use_sigmoid_cls = False
    with pytest.raises(UnsupportedModelError, match='softmax'):
        make_wrapper(bad, DeployConfig(input_shape=(256, 256)))


@pytest.mark.parametrize(
    'config',
    [
        'configs/demo/rtmdet-tiny_gpunet-0_cspnext-pafpn_demo.py',
        pytest.param('configs/demo/yolox-s_gpunet-0_pafpn_demo.py', marks=pytest.mark.slow),
    ],
)
def test_search_latency_wires_each_neck_to_the_candidate(config):
    """The search's latency path on a small arch: CSPNeXtPAFPN / YOLOXPAFPN take the arch's
    level channels, and the seeded head sends about the asked share of scores to NMS."""
    from gpunet_mm.deploy import LatencyTarget, latency

    from .test_detector_latency import _tiny_arch

    arch = _tiny_arch()
    path = os.path.join(ROOT, config)
    cfg = latency.model_cfg(arch, path)
    chans = arch.level_channels()
    assert cfg['neck']['in_channels'] == [chans[i] for i in cfg['backbone']['out_indices']]
    target = LatencyTarget(threads=1, shape=(128, 128), iters=2, warmup=1, score_fraction=0.01)
    r = latency.measure_detector(arch, path, target)
    assert r.median_ms > 0 and r.env['post_processing'] is True
