"""The CLI tools as a user meets them: quoting, missing data, labels, thread counts."""

import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from gpunet_mm.apis import build_model, check_dataset_files, cpu_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')


@pytest.fixture
def echo_python(tmp_path):
    """A stand-in for $PYTHON that writes the arguments it got, one per line."""
    out = tmp_path / 'argv.txt'
    script = tmp_path / 'fake python'
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{out}"\n')
    script.chmod(0o755)
    return str(script), out


@pytest.mark.parametrize('tool', ['dist_train.sh', 'dist_test.sh'])
def test_dist_scripts_pass_paths_with_spaces_intact(tmp_path, echo_python, tool):
    fake, out = echo_python
    config = str(tmp_path / 'my configs' / 'retina net.py')
    ckpt = str(tmp_path / 'my run' / 'epoch 1.pth')
    args = [config, '2', '--work-dir', str(tmp_path / 'work dir')]
    if tool == 'dist_test.sh':
        args = [config, ckpt, '2', '--work-dir', str(tmp_path / 'work dir')]
    r = subprocess.run(
        ['bash', f'tools/{tool}', *args],
        cwd=ROOT,
        env=dict(ENV, PYTHON=fake),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    argv = out.read_text().splitlines()
    assert config in argv and str(tmp_path / 'work dir') in argv
    assert '--nproc_per_node=2' in argv and argv[argv.index('--launcher') + 1] == 'pytorch'
    if tool == 'dist_test.sh':
        assert argv[argv.index(config) + 1] == ckpt


def test_train_on_the_demo_config_without_data_names_the_command(tmp_path):
    missing = str(tmp_path / 'no_demo_data' / 'demo_det') + '/'
    r = subprocess.run(
        [
            sys.executable,
            'tools/train.py',
            'configs/demo/retinanet_gpunet-0_fpn_demo.py',
            '--work-dir',
            str(tmp_path / 'wd'),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={missing}',
            f'val_dataloader.dataset.data_root={missing}',
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert 'tools/misc/make_demo_data.py' in r.stderr and 'instances_train.json' in r.stderr
    assert 'Traceback' not in r.stderr and 'pycocotools' not in r.stderr


def test_dataset_check_passes_existing_data_and_names_coco(tmp_path):
    cfg = Config.fromfile(
        os.path.join(ROOT, 'configs/gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py')
    )
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'coco') + '/'
    with pytest.raises(FileNotFoundError, match='instances_train2017.json.*COCO'):
        check_dataset_files(cfg, ('train',))
    ann = tmp_path / 'coco' / cfg.train_dataloader.dataset.ann_file
    ann.parent.mkdir(parents=True)
    ann.write_text('{}')
    check_dataset_files(cfg, ('train',))


def test_get_flops_labels_macs_as_macs():
    r = subprocess.run(
        [
            sys.executable,
            'tools/analysis/get_flops.py',
            'configs/demo/gpunet-0_demo_cls.py',
            '--shape',
            '64',
            '64',
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    macs = float(line.split(' GMACs')[0].rsplit(' ', 1)[-1])
    flops = float(line.split(' GFLOPs')[0].rsplit('= ', 1)[-1])
    assert macs > 0 and abs(flops - 2 * macs) < 2e-3


def test_cpu_threads_leave_a_core_per_loader_worker(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    cfg = Config(dict(train_dataloader=dict(num_workers=1)))
    assert cpu_threads(cfg) == 1  # the demo on 2 cores: 1 thread + 1 loader worker
    assert cpu_threads(Config(dict(train_dataloader=dict(num_workers=0)))) == 2
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    assert cpu_threads(Config(dict(train_dataloader=dict(num_workers=2)))) == 2
    assert cpu_threads(cfg, requested=3) == 3
    monkeypatch.setenv('OMP_NUM_THREADS', '8')
    assert cpu_threads(cfg) is None  # the user's explicit setting wins
    with pytest.raises(ValueError, match='threads: got 0'):
        cpu_threads(cfg, requested=0)


COCO_CONFIGS = sorted(
    os.path.join('configs/gpunet_det', f)
    for f in os.listdir(os.path.join(ROOT, 'configs/gpunet_det'))
    if f.endswith('_coco.py')
)


@pytest.mark.parametrize('config', COCO_CONFIGS)
def test_coco_configs_freeze_nothing_without_pretrained_weights(tmp_path, config):
    """As shipped (no weights) the backbone trains whole; with weights, mmdet's recipe."""
    cfg = Config.fromfile(os.path.join(ROOT, config))
    bb = cfg.model.backbone
    assert bb.frozen_stages == 0 and bb.norm_eval is False and bb.init_cfg is None
    text = open(os.path.join(ROOT, config)).read()
    assert text.count('pretrained = None') == 1
    child = tmp_path / os.path.basename(config)
    child.write_text(
        text.replace('pretrained = None', "pretrained = 'ckpt.pth'").replace(
            "'../_base_/", f"'{ROOT}/configs/_base_/"
        )
    )
    bb = Config.fromfile(str(child)).model.backbone
    assert bb.frozen_stages == 1 and bb.norm_eval is True
    assert bb.init_cfg == dict(type='Pretrained', checkpoint='ckpt.pth', prefix='backbone.')
    assert build_model(Config.fromfile(str(child)).model.backbone, 'mmdet').frozen_stages == 1


def test_test_py_show_dir_turns_on_the_visualisation_hook():
    from tools.test import enable_show_dir

    det = Config.fromfile(os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py'))
    enable_show_dir(det, 'vis')
    assert det.default_hooks.visualization.draw is True
    assert det.default_hooks.visualization.test_out_dir == 'vis'
    cls = Config.fromfile(os.path.join(ROOT, 'configs/demo/gpunet-0_demo_cls.py'))
    enable_show_dir(cls, 'vis')
    assert cls.default_hooks.visualization.enable is True
    assert cls.default_hooks.visualization.out_dir == 'vis'
