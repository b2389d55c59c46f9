"""The parity gate on *trained* detectors: one per head family, a few epochs on the demo
data (so boxes and scores are real), shared by the session and cached under
work_dirs/test_cache (git-ignored; delete it to retrain)."""

import os

import pytest
import torch

from gpunet_mm.deploy import DeployConfig, export_onnx
from gpunet_mm.deploy.cli import deploy
from gpunet_mm.deploy.parity import HEAD_DEMOS

from .conftest import ROOT
from .test_heads import assert_parity

pytestmark = pytest.mark.slow
CACHE = os.path.join(ROOT, 'work_dirs', 'test_cache')
SIZE = 128


@pytest.fixture(scope='session')
def small_demo_data():
    from gpunet_mm.datasets import generate_detection_demo

    root = os.path.join(CACHE, 'demo_det_64')
    generate_detection_demo(root, num_train=64, num_val=8, image_size=SIZE, seed=5, with_masks=True)
    return root + '/'


_TRAINED = {}


def trained(name, data_root):
    """(model, config dict, checkpoint) of the demo detector ``name``, trained once."""
    from mmengine.config import Config

    from gpunet_mm.deploy import build_detector
    from gpunet_mm.deploy.parity import demo_trained_detector
    from gpunet_mm.safe_checkpoint import trusted_checkpoints

    if name not in _TRAINED:
        torch.set_num_threads(1)
        cfg, ckpt = demo_trained_detector(
            os.path.join(ROOT, HEAD_DEMOS[name]),
            os.path.join(CACHE, 'trained', name.replace(' ', '_')),
            data_root,
            epochs=4,
            size=SIZE,
        )
        with trusted_checkpoints():  # written by the session's own training
            model = build_detector(Config(cfg), ckpt)
        _TRAINED[name] = (model, cfg, ckpt)
    return _TRAINED[name]


def _val_images(data_root):
    folder = os.path.join(data_root, 'val')
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))


@pytest.mark.parametrize('name', sorted(HEAD_DEMOS))
def test_trained_detector_exports_and_matches_predict(name, small_demo_data, tmp_path):
    model, _, _ = trained(name, small_demo_data)
    path = str(tmp_path / 'm.onnx')
    export_onnx(model, DeployConfig(input_shape=(SIZE, SIZE)), path)
    images = _val_images(small_demo_data)[:2]
    for img in images:
        assert_parity(model, [img], path, (SIZE, SIZE), top_k=10, min_ref=5)


@pytest.mark.parametrize('name', ['RTMDet-tiny', 'YOLOX-s'])
def test_deploy_tool_gate_passes_on_the_trained_checkpoint(name, small_demo_data, tmp_path):
    """tools/deploy.py's path (config file + checkpoint, the ORT-vs-PyTorch gate)."""
    from mmengine.config import Config

    _, cfg, ckpt = trained(name, small_demo_data)
    config = str(tmp_path / 'det.py')
    Config(cfg).dump(config)
    from gpunet_mm.safe_checkpoint import trusted_checkpoints

    with trusted_checkpoints():
        summary = deploy(config, ckpt, DeployConfig(input_shape=(SIZE, SIZE)), str(tmp_path / 'd'))
    assert summary['verify']['passed'] and summary['verify']['num_dets'] > 0, summary['verify']


def test_trained_mask_rcnn_masks_are_the_mask_heads(small_demo_data, tmp_path):
    """The ``masks`` output of the trained Mask R-CNN: PyTorch's mask head on the same
    boxes, per detection (28x28 RoI masks, not pasted)."""
    import numpy as np
    import onnxruntime as ort

    from gpunet_mm.deploy.parity import load_images

    from .test_heads import mask_head_reference

    model, _, _ = trained('Mask R-CNN', small_demo_data)
    path = str(tmp_path / 'm.onnx')
    export_onnx(model, DeployConfig(input_shape=(SIZE, SIZE), masks=True), path)
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for img in _val_images(small_demo_data)[:2]:
        assert_parity(model, [img], path, (SIZE, SIZE), top_k=10, min_ref=5)
        raw, packed = load_images([img], (SIZE, SIZE))
        dets, labels, masks = sess.run(None, {'input': raw.numpy()})
        keep = labels[0] >= 0
        want = mask_head_reference(
            model, packed, torch.from_numpy(dets[0, keep, :4]), torch.from_numpy(labels[0, keep])
        )
        np.testing.assert_allclose(masks[0, keep], want, atol=1e-4)
