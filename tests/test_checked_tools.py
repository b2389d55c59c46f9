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

    from .test_safe_checkpoint import demo_cfg

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


@pytest.mark.parametrize('garbage', [['foo'], ['=1'], ['a.b=[1,']])
def test_cfg_options_garbage_is_a_usage_error(garbage, capsys):
    import argparse

    from gpunet_mm.apis import CfgOptionsAction

    p = argparse.ArgumentParser(prog='train.py')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    with pytest.raises(SystemExit) as e:
        p.parse_args(['--cfg-options', *garbage])
    assert e.value.code == 2
    assert '--cfg-options' in capsys.readouterr().err
    assert p.parse_args(['--cfg-options', 'a.b=1', 'c=[1,2]']).cfg_options == {
        'a.b': 1,
        'c': [1, 2],
    }


def test_cfg_options_that_do_not_fit_the_config_name_the_option(tmp_path):
    from gpunet_mm.apis import load_config

    cfg = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs/demo')
    cfg = os.path.join(cfg, 'retinanet_gpunet-0_fpn_demo.py')
    with pytest.raises(ValueError, match=r'--cfg-options model.backbone.tier.x=1: does not fit'):
        load_config(cfg, str(tmp_path / 'wd'), {'model.backbone.tier.x': 1})
    (tmp_path / 'afile').write_text('x')
    with pytest.raises(ValueError, match='afile is a file; allowed: a folder'):
        load_config(cfg, str(tmp_path / 'afile'))


@pytest.mark.parametrize(
    'content, why',
    [
        (b'', 'empty'),
        (b'{"images": [{"id": 1}], "annotations": [{"id', 'truncated'),
        (b'{"images": [], "annotations": [], "categories": []}', 'without images'),
        (b'{"images": [}', 'not valid JSON'),
    ],
)
def test_truncated_or_empty_annotation_file_is_named(tmp_path, content, why):
    from mmengine.config import Config

    from gpunet_mm.apis import check_dataset_files

    ann = tmp_path / 'instances_val.json'
    ann.write_bytes(content)
    cfg = Config(
        dict(val_dataloader=dict(dataset=dict(data_root=str(tmp_path), ann_file=ann.name)))
    )
    with pytest.raises(ValueError, match=rf'val_dataloader.dataset.ann_file: {ann} is .*{why}'):
        check_dataset_files(cfg)


@pytest.mark.parametrize('args', [[], ['cfg.py'], ['cfg.py', 'two']])
def test_dist_train_without_arguments_prints_its_usage(args):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run(
        ['bash', os.path.join(root, 'tools/dist_train.sh'), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert 'usage: tools/dist_train.sh CONFIG GPUS' in r.stderr or "GPUS: got 'two'" in r.stderr
