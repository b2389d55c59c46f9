"""Checkpoints load weights-only: mmengine's own files work, crafted pickles run nothing."""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

import gpunet_mm  # noqa: F401  (installs the loader)
from gpunet_mm.safe_checkpoint import (
    CorruptCheckpointError,
    UntrustedCheckpointError,
    trust_checkpoint_enabled,
    trusted_checkpoints,
)

from .crafted_pickles import marker_path, write_getattr_gadget, write_raw, write_zip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRITERS = {'raw_pickle': write_raw, 'torch_zip': write_zip, 'getattr_gadget': write_getattr_gadget}


class NotAllowListed:
    pass


def mmengine_like_checkpoint():
    buf = HistoryBuffer()
    buf.update(np.float64(0.5))
    return dict(
        meta=dict(epoch=np.int64(3), seed=np.int32(7), best_score=np.float64(0.25)),
        state_dict={'w': torch.ones(2)},
        message_hub=dict(log_scalars={'train/loss': buf}, runtime_info={'iter': 10}),
    )


def test_mmengine_checkpoint_loads_weights_only_without_warning(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    torch.save(mmengine_like_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError):  # what upstream mmengine hits on torch>=2.6
        torch.load(path, weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['epoch'] == 3
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.mean() == 0.5


def test_unknown_global_is_refused_naming_it_and_the_opt_in(tmp_path):
    path = tmp_path / 'odd.pth'
    torch.save({'x': NotAllowListed()}, path)
    with pytest.raises(UntrustedCheckpointError) as e:
        _load_checkpoint(str(path), map_location='cpu')
    msg = str(e.value)
    assert 'NotAllowListed' in msg and str(path) in msg
    assert 'trust_checkpoint=True' in msg and '--trust-checkpoint' in msg
    with trusted_checkpoints():
        assert isinstance(_load_checkpoint(str(path))['x'], NotAllowListed)
    assert not trust_checkpoint_enabled()  # the opt-in ends with the block


def test_no_environment_variable_enables_trust(tmp_path, monkeypatch):
    for name in ('TRUST_CHECKPOINT', 'GPUNET_MM_TRUST_CHECKPOINT'):
        monkeypatch.setenv(name, '1')
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = marker_path(tmp_path)
    path = write_zip(str(tmp_path / 'evil.pth'), marker)
    with pytest.raises(UntrustedCheckpointError):
        _load_checkpoint(path)
    assert not os.path.exists(marker)


@pytest.mark.parametrize('kind', sorted(WRITERS))
def test_crafted_pickle_runs_nothing_through_mmengine_loaders(tmp_path, kind):
    marker = marker_path(tmp_path)
    path = WRITERS[kind](str(tmp_path / f'{kind}.pth'), marker)
    with pytest.raises(UntrustedCheckpointError, match='refusing to load checkpoint'):
        _load_checkpoint(path, map_location='cpu')
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint(torch.nn.Linear(2, 2), path, map_location='cpu')
    assert not os.path.exists(marker)


def test_getattr_is_only_historybuffers_statistics(tmp_path):
    from gpunet_mm.safe_checkpoint import _history_buffer_getattr

    assert _history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, '__class__'), (os, 'system')):
        with pytest.raises(pickle.UnpicklingError, match='getattr'):
            _history_buffer_getattr(obj, name)


@pytest.mark.parametrize('cut', ['empty', 'half', 'tail'])
def test_truncated_or_empty_checkpoint_names_the_file(tmp_path, cut):
    good = tmp_path / 'good.pth'
    torch.save(mmengine_like_checkpoint(), good)
    data = good.read_bytes()
    bad = tmp_path / f'{cut}.pth'
    bad.write_bytes({'empty': b'', 'half': data[: len(data) // 2], 'tail': data[:-10]}[cut])
    with pytest.raises(CorruptCheckpointError, match=str(bad)):
        _load_checkpoint(str(bad))


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / 'notes.pth'
    bad.write_text('hello, this is not a checkpoint')
    with pytest.raises(CorruptCheckpointError, match='notes.pth'):
        _load_checkpoint(str(bad))


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='can not be found'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


def test_converter_refuses_a_crafted_pickle(tmp_path):
    marker = marker_path(tmp_path)
    src = write_zip(str(tmp_path / 'release.pth.tar'), marker)
    r = subprocess.run(
        [
            sys.executable,
            'tools/model_converters/gpunet_release_to_mm.py',
            src,
            str(tmp_path / 'out.pth'),
            '--tier',
            'GPUNet-0',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'),
    )
    assert r.returncode != 0
    assert 'refusing to load checkpoint' in r.stderr and '--trust-checkpoint' in r.stderr
    assert 'Traceback' not in r.stderr
    assert not os.path.exists(marker) and not os.path.exists(tmp_path / 'out.pth')


def test_deploy_cli_refuses_a_crafted_pickle(tmp_path):
    from tools.deploy import main

    marker = marker_path(tmp_path)
    ckpt = write_raw(str(tmp_path / 'det.pth'), marker)
    cfg = os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py')
    with pytest.raises(SystemExit, match='refusing to load checkpoint'):
        main([cfg, ckpt, '--shape', '256', '256', '--work-dir', str(tmp_path / 'wd')])
    assert not os.path.exists(marker)


@pytest.fixture(scope='module')
def tiny_demo(tmp_path_factory):
    from gpunet_mm.datasets import generate_detection_demo

    root = tmp_path_factory.mktemp('demo_det')
    generate_detection_demo(str(root), num_train=4, num_val=2, image_size=64, seed=1)
    return str(root) + '/'


def demo_cfg(root: str, work_dir: str):
    from gpunet_mm.apis import load_config

    cfg = load_config(os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py'), work_dir)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = root
        loader.num_workers, loader.persistent_workers = 0, False
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = (
        root + 'annotations/instances_val.json'
    )
    cfg.train_cfg.max_epochs = 1
    cfg.log_level = 'WARNING'
    return cfg


@pytest.mark.parametrize('how', ['load_from_test', 'resume_train'])
def test_crafted_pickle_runs_nothing_through_the_runner(tmp_path, tiny_demo, how):
    """What tools/test.py CKPT and tools/train.py --resume CKPT do, in process."""
    from gpunet_mm.apis import make_runner

    marker = marker_path(tmp_path)
    ckpt = write_zip(str(tmp_path / 'evil.pth'), marker)
    cfg = demo_cfg(tiny_demo, str(tmp_path / 'wd'))
    cfg.load_from = ckpt
    if how == 'resume_train':
        cfg.resume = True
    runner = make_runner(cfg)
    with pytest.raises(UntrustedCheckpointError, match='trust_checkpoint=True'):
        runner.test() if how == 'load_from_test' else runner.train()
    assert not os.path.exists(marker)


def test_trust_checkpoint_config_key_is_the_opt_in(tmp_path, tiny_demo):
    """trust_checkpoint=True (what --trust-checkpoint sets) loads an odd but wanted file."""
    from gpunet_mm.apis import build_model, make_runner

    cfg = demo_cfg(tiny_demo, str(tmp_path / 'wd'))
    model = build_model(cfg.model, 'mmdet')
    ckpt = str(tmp_path / 'odd.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(note=NotAllowListed())), ckpt)
    cfg.load_from = ckpt
    with pytest.raises(UntrustedCheckpointError, match='NotAllowListed'):
        make_runner(cfg).test()
    cfg = demo_cfg(tiny_demo, str(tmp_path / 'wd2'))
    cfg.load_from, cfg.trust_checkpoint = ckpt, True
    metrics = make_runner(cfg).test()
    assert 'coco/bbox_mAP' in metrics
    assert not trust_checkpoint_enabled()  # reset after the run


def test_the_old_module_name_is_a_deprecated_alias():
    """``gpunet_mm.compat`` (documented before issue 19) still answers, with a warning."""
    import gpunet_mm.compat as old
    from gpunet_mm import safe_checkpoint

    with pytest.warns(DeprecationWarning, match='gpunet_mm.safe_checkpoint'):
        assert old.trusted_checkpoints is safe_checkpoint.trusted_checkpoints
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018
