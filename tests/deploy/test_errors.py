"""Bad input fails early with the bad value and the allowed ones."""

import pytest
import torch

from gpunet_mm.deploy import DeployConfig, ShapeError, UnsupportedModelError, make_wrapper
from gpunet_mm.deploy.backends import get_backend
from gpunet_mm.deploy.export import head_kind

from .conftest import seeded_detector


def test_unknown_backend_lists_available_and_install_hint():
    with pytest.raises(ValueError) as e:
        get_backend('tvm')
    msg = str(e.value)
    assert "'tvm'" in msg
    for name in ('onnxruntime', 'torch', 'tensorrt'):
        assert name in msg
    assert 'pip install' in msg


def test_bad_deploy_config_values():
    with pytest.raises(ValueError, match="'ncnn'.*onnxruntime, tensorrt"):
        DeployConfig(backend='ncnn')
    with pytest.raises(ValueError, match="'bf16'"):
        DeployConfig(precision='bf16')
    with pytest.raises(ValueError, match='Q/DQ'):
        DeployConfig(precision='int8')
    with pytest.raises(ValueError, match='input_shape'):
        DeployConfig(input_shape=(256, -1))
    with pytest.raises(ValueError, match='shape_typo'):
        DeployConfig.from_any({'shape_typo': 1})
    with pytest.raises(ValueError, match='iou_threshold'):
        DeployConfig(post_processing=dict(iou_threshold=1.5))


def test_shape_not_divisible_names_the_stride(demo_images):
    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    with pytest.raises(ShapeError, match=r'height 250 not divisible by the network stride 32'):
        make_wrapper(model, DeployConfig(input_shape=(250, 256)))
    with pytest.raises(ShapeError, match='min_shape'):
        make_wrapper(model, DeployConfig(input_shape=(256, 256), dynamic=True, min_shape=(100, 96)))


def test_unsupported_head_and_detector_are_named(demo_images):
    model = seeded_detector('retinanet_gpunet-0_demo', demo_images)
    with pytest.raises(UnsupportedModelError, match='detector Linear'):
        head_kind(torch.nn.Linear(2, 2))
    import copy

    class MyHead(torch.nn.Module):
        pass

    bad = copy.deepcopy(model)
    bad.bbox_head = MyHead()
    with pytest.raises(UnsupportedModelError, match=r'model.bbox_head \(MyHead\).*FCOSHead'):
        head_kind(bad)
