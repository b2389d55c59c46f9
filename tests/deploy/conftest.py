import glob
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='session')
def demo_images(tmp_path_factory):
    """Four rendered 256x256 demo images (COCO shapes set)."""
    from gpunet_mm.datasets import generate_detection_demo

    out = tmp_path_factory.mktemp('demo_det')
    generate_detection_demo(str(out), num_train=1, num_val=4, image_size=256, seed=3)
    paths = sorted(glob.glob(os.path.join(out, 'val', '*.jpg')))
    assert len(paths) == 4
    return paths


_MODELS = {}


def seeded_detector(name: str, images):
    """A demo-width detector with a seeded classification head (cached per session)."""
    from gpunet_mm.deploy.export import build_detector
    from gpunet_mm.deploy.parity import DEMO_DETECTORS, load_images, seed_head

    if name not in _MODELS:
        cfg, opts = DEMO_DETECTORS[name]
        torch.manual_seed(0)
        model = build_detector(os.path.join(ROOT, cfg), None, opts)
        _, packed = load_images(images[:2], (256, 256))
        seed_head(model, model.data_preprocessor(packed, False)['inputs'])
        _MODELS[name] = model
    return _MODELS[name]
