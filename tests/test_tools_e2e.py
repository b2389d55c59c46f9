"""End to end through the CLI tools on a tiny demo set: train, save, resume, load_from,
test, and 2-process distributed training on CPU (gloo)."""

import glob
import os
import re
import subprocess
import sys

import pytest
import torch

from .subprocess_check import check_ok

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'configs/demo/retinanet_gpunet-0_fpn_demo.py'


@pytest.fixture(scope='module')
def tiny_det(tmp_path_factory):
    from gpunet_mm.datasets import generate_detection_demo

    root = tmp_path_factory.mktemp('demo_det')
    generate_detection_demo(str(root), num_train=16, num_val=8, image_size=128, seed=3)
    return str(root)


def data_options(root: str, epochs: int):
    root = root.rstrip('/') + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/instances_val.json',
        f'test_evaluator.ann_file={root}annotations/instances_val.json',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'image_size=128',
        f'train_cfg.max_epochs={epochs}',
        'train_cfg.val_interval=100',
        'default_hooks.logger.interval=1',
    ]


def run(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900, **kw)
    check_ok(r)
    return r


def epoch_of(path):
    return torch.load(path, map_location='cpu', weights_only=False)['meta']['epoch']


def test_train_save_resume_load_from_and_test(tiny_det, tmp_path):
    wd = str(tmp_path / 'wd')
    py = sys.executable
    run(
        [
            py,
            'tools/train.py',
            CONFIG,
            '--work-dir',
            wd,
            '--cfg-options',
            *data_options(tiny_det, 1),
        ]
    )
    assert epoch_of(f'{wd}/epoch_1.pth') == 1
    w1 = torch.load(f'{wd}/epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    # resume the latest checkpoint and continue for one more epoch
    r = run(
        [
            py,
            'tools/train.py',
            CONFIG,
            '--work-dir',
            wd,
            '--resume',
            '--cfg-options',
            *data_options(tiny_det, 2),
        ]
    )
    assert 'resumed epoch: 1' in (r.stdout + r.stderr)
    assert epoch_of(f'{wd}/epoch_2.pth') == 2
    w2 = torch.load(f'{wd}/epoch_2.pth', map_location='cpu', weights_only=False)['state_dict']
    key = 'backbone.layers.4.0.linear_conv.conv.weight'
    assert not torch.equal(w1[key], w2[key])
    # load_from (weights only) into a fresh run
    wd2 = str(tmp_path / 'wd2')
    run(
        [
            py,
            'tools/train.py',
            CONFIG,
            '--work-dir',
            wd2,
            '--cfg-options',
            *data_options(tiny_det, 1),
            f'load_from={wd}/epoch_2.pth',
        ]
    )
    assert os.path.isfile(f'{wd2}/epoch_1.pth')
    # evaluate with tools/test.py, dumping predictions
    out = str(tmp_path / 'preds.pkl')
    r = run(
        [
            py,
            'tools/test.py',
            CONFIG,
            f'{wd}/epoch_2.pth',
            '--work-dir',
            wd,
            '--out',
            out,
            '--cfg-options',
            *data_options(tiny_det, 2),
        ]
    )
    assert 'coco/bbox_mAP' in (r.stdout + r.stderr)
    assert os.path.getsize(out) > 0


def test_dist_train_two_cpu_processes(tiny_det, tmp_path):
    wd = str(tmp_path / 'dist')
    env_py = dict(PYTHON=sys.executable, PORT='29517')
    env = dict(os.environ, **env_py, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    r = subprocess.run(
        [
            'bash',
            'tools/dist_train.sh',
            CONFIG,
            '2',
            '--work-dir',
            wd,
            '--cfg-options',
            *data_options(tiny_det, 1),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    check_ok(r)
    assert epoch_of(f'{wd}/epoch_1.pth') == 1
    assert glob.glob(f'{wd}/best_coco_bbox_mAP_epoch_1.pth')  # rank 0's last save
    logs = glob.glob(f'{wd}/*/*.log')
    text = ''.join(open(p).read() for p in logs)
    assert 'Distributed training: True' in text
    # 16 images, batch 4 per process: 2 processes share an epoch as 2 iterations each
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', text) and '[1][4/4]' not in text


def test_demo_classifier_trains_one_epoch(tmp_path):
    """The classification demo config runs through tools/train.py (a few iterations)."""
    from gpunet_mm.datasets import generate_classification_demo

    root = str(tmp_path / 'demo_cls')
    generate_classification_demo(root, per_class_train=4, per_class_val=2, image_size=32)
    wd = str(tmp_path / 'cls')
    run(
        [
            sys.executable,
            'tools/train.py',
            'configs/demo/gpunet-0_demo_cls.py',
            '--work-dir',
            wd,
            '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1',
            'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0',
            'test_dataloader.num_workers=0',
        ]
    )
    assert epoch_of(f'{wd}/epoch_1.pth') == 1
    logs = ''.join(open(p).read() for p in glob.glob(f'{wd}/*/*.log'))
    assert 'accuracy/top1' in logs


def test_pretrained_backbone_into_detector(tmp_path):
    """A converted classifier checkpoint initialises a detector's backbone via init_cfg."""
    from mmengine.config import Config

    from gpunet_mm.apis import build_model
    from gpunet_mm.models.classifiers import build_release_classifier

    torch.manual_seed(1)
    cls = build_release_classifier('GPUNet-1')
    ckpt = str(tmp_path / 'gpunet-1_in1k.pth')
    torch.save({'state_dict': cls.state_dict()}, ckpt)
    cfg = Config.fromfile(
        os.path.join(ROOT, 'configs/gpunet_det/retinanet_gpunet-1_fpn_1x_coco.py')
    )
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    det = build_model(cfg.model, 'mmdet')
    det.init_weights()
    src = cls.backbone.state_dict()
    dst = det.backbone.state_dict()
    assert set(dst) < set(src)  # the detector has no tail
    for k, v in dst.items():
        assert torch.equal(v, src[k]), k
