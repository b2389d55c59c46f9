"""The tools never lose what the user owns and never pass a failed run as a success."""

import math
import os

import pytest
import torch


def test_converter_refuses_dst_equal_to_src(tmp_path):
    from tools.model_converters.gpunet_release_to_mm import convert

    src = tmp_path / 'gpunet0_release.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}}, src)
    before = src.read_bytes()
    link = tmp_path / 'same.pth'
    link.symlink_to(src)
    for dst in (str(src), str(link), str(tmp_path / '.' / 'gpunet0_release.pth')):
        with pytest.raises(ValueError, match='would overwrite the release file'):
            convert(str(src), dst, 'GPUNet-0')
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    'metrics',
    [{}, None, {'coco/bbox_mAP': math.nan, 'coco/bbox_mAP_50': math.nan}],
    ids=['empty', 'none', 'nan'],
)
def test_a_test_run_without_a_metric_is_a_failure(metrics):
    from tools.test import NoMetricError, check_metrics

    with pytest.raises(NoMetricError, match='ckpt.pth: the evaluation produced no metric'):
        check_metrics(metrics, 'ckpt.pth')
    check_metrics({'coco/bbox_mAP': 0.0, 'coco/bbox_mAP_50': math.nan}, 'ckpt.pth')


def test_nan_weights_checkpoint_exits_non_zero(tmp_path):
    """tools/test.py with a checkpoint of NaN weights: mmdet logs 'results of the whole
    dataset is empty' and returns no mAP; the tool exits with an error, not 0."""
    from gpunet_mm.apis import build_model
    from gpunet_mm.datasets import generate_detection_demo
    from tools.test import main

    from .test_compat import demo_cfg

    root = tmp_path / 'demo'
    generate_detection_demo(str(root), num_train=2, num_val=2, image_size=64, seed=1)
    cfg = demo_cfg(str(root) + '/', str(tmp_path / 'wd'))
    model = build_model(cfg.model, 'mmdet')
    sd = {
        k: torch.full_like(v, math.nan) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    ckpt = str(tmp_path / 'nan.pth')
    torch.save({'state_dict': sd}, ckpt)
    cfg_file = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_file)
    import sys

    argv = sys.argv
    sys.argv = ['test.py', cfg_file, ckpt, '--work-dir', str(tmp_path / 'wd')]
    try:
        with pytest.raises(SystemExit) as e:
            main()
    finally:
        sys.argv = argv
    assert 'produced no metric' in str(e.value.code)
    assert os.path.isfile(ckpt)
