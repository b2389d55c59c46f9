"""A wrong checkpoint never passes silently; --resume survives a truncated latest file."""

import logging
import os
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from gpunet_mm.apis import (
    CheckpointMismatchError,
    GPUNetCheckpointHook,
    build_model,
    check_checkpoint,
    make_runner,
    resolve_resume,
)
from gpunet_mm.apis.checkpoint import META_KEY, arch_meta, check_resume_file
from gpunet_mm.models import get_tier
from gpunet_mm.models.backbones.gpunet import GPUNet

from .test_safe_checkpoint import demo_cfg, tiny_demo  # noqa: F401  (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py')


def demo_detector(tier: str = 'GPUNet-0') -> torch.nn.Module:
    """The demo RetinaNet with another tier's backbone (neck channels follow the tier)."""
    cfg = Config.fromfile(DEMO)
    chans = [GPUNet.feature_info(tier)[i]['channels'] for i in (2, 3, 4)]
    cfg.model.backbone.tier = tier
    cfg.model.neck.in_channels = chans
    torch.manual_seed(0)
    return build_model(cfg.model, 'mmdet')


@pytest.fixture(scope='module')
def det0():
    return demo_detector('GPUNet-0')


@pytest.fixture(scope='module')
def det1_ckpt():
    det1 = demo_detector('GPUNet-1')
    return dict(state_dict=det1.state_dict(), meta={META_KEY: arch_meta(det1)})


def test_same_architecture_passes_and_bn_counters_may_be_missing(det0):
    sd = {k: v for k, v in det0.state_dict().items() if not k.endswith('num_batches_tracked')}
    check_checkpoint(det0, dict(state_dict=sd, meta={META_KEY: arch_meta(det0)}), 'ckpt')


def test_other_tier_by_meta_names_both(det0, det1_ckpt):
    with pytest.raises(CheckpointMismatchError) as e:
        check_checkpoint(det0, det1_ckpt, 'checkpoint x.pth')
    msg = str(e.value)
    assert 'GPUNet-1' in msg and 'GPUNet-0' in msg and 'x.pth' in msg
    assert get_tier('GPUNet-1').structural_hash() in msg


def test_other_tier_without_meta_is_found_by_shapes(det0, det1_ckpt):
    with pytest.raises(
        CheckpointMismatchError, match=r'GPUNet-1 \(by its tensor shapes\).*GPUNet-0'
    ):
        check_checkpoint(det0, dict(state_dict=det1_ckpt['state_dict']), 'ckpt')


def test_empty_state_dict_is_an_error(det0):
    with pytest.raises(CheckpointMismatchError, match='state_dict is empty'):
        check_checkpoint(det0, dict(state_dict={}, meta={}), 'ckpt')


def test_classifier_checkpoint_into_detector_is_an_error_with_the_init_cfg_hint(det0):
    from gpunet_mm.models.classifiers import build_release_classifier

    cls = build_release_classifier('GPUNet-0')
    ckpt = dict(state_dict=cls.state_dict(), meta=dict(arch=get_tier(0).to_dict()))
    with pytest.raises(CheckpointMismatchError) as e:
        check_checkpoint(det0, ckpt, 'cls.pth')
    msg = str(e.value)
    assert "'head.fc.weight'" in msg or 'head.fc' in msg
    assert 'missing' in msg and "type='Pretrained'" in msg


def test_allowed_differences_are_configurable(det0):
    sd = {k: v for k, v in det0.state_dict().items() if not k.startswith('bbox_head.')}
    with pytest.raises(CheckpointMismatchError, match='bbox_head'):
        check_checkpoint(det0, dict(state_dict=sd), 'ckpt')
    check_checkpoint(det0, dict(state_dict=sd), 'ckpt', allow_missing=[r'^bbox_head\.'])


def test_hook_stores_the_architecture_on_save(det0):
    checkpoint = dict(meta=dict(epoch=1))
    GPUNetCheckpointHook().before_save_checkpoint(SimpleNamespace(model=det0), checkpoint)
    info = checkpoint['meta'][META_KEY]['backbone']
    assert info['name'] == 'GPUNet-0' and info['hash'] == get_tier(0).structural_hash()
    assert info['arch'] == get_tier(0).to_dict()


def test_pretrained_init_cfg_of_another_tier_is_an_error(tmp_path):
    from gpunet_mm.models.classifiers import build_release_classifier

    ckpt = str(tmp_path / 'gpunet-1_in1k.pth')
    torch.save(dict(state_dict=build_release_classifier('GPUNet-1').state_dict()), ckpt)
    net = GPUNet(
        tier='GPUNet-0',
        out_indices=(2, 3, 4),
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.'),
    )
    with pytest.raises(CheckpointMismatchError, match='GPUNet-1.*GPUNet-0'):
        net.init_weights()
    wrong_prefix = GPUNet(
        tier='GPUNet-1', init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='model.')
    )
    with pytest.raises(CheckpointMismatchError, match="no keys under prefix 'model.'"):
        wrong_prefix.init_weights()


def test_deploy_with_another_tiers_checkpoint_exits_naming_both(tmp_path, det1_ckpt):
    from tools.deploy import main

    ckpt = str(tmp_path / 'det1.pth')
    torch.save(det1_ckpt, ckpt)
    with pytest.raises(SystemExit, match='GPUNet-1.*GPUNet-0'):
        main([DEMO, ckpt, '--shape', '256', '256', '--work-dir', str(tmp_path / 'wd')])
    assert not os.path.exists(tmp_path / 'wd' / 'end2end.onnx')


def test_test_runner_with_another_tiers_checkpoint_stops(tmp_path, tiny_demo, det1_ckpt):  # noqa: F811
    """tools/test.py's path: Runner.test() with load_from of a GPUNet-1 detector."""
    ckpt = str(tmp_path / 'det1.pth')
    torch.save(det1_ckpt, ckpt)
    cfg = demo_cfg(tiny_demo, str(tmp_path / 'wd'))
    cfg.load_from = ckpt
    with pytest.raises(CheckpointMismatchError, match='GPUNet-1.*GPUNet-0'):
        make_runner(cfg).test()


# --------------------------------------------------------------------------- resume
def save(path, epoch: int) -> str:
    torch.save(dict(meta=dict(epoch=epoch), state_dict={'w': torch.ones(1)}), path)
    return str(path)


def test_resume_falls_back_past_a_truncated_latest(tmp_path, caplog):
    good = save(tmp_path / 'epoch_1.pth', 1)
    latest = save(tmp_path / 'epoch_2.pth', 2)
    data = open(latest, 'rb').read()
    open(latest, 'wb').write(data[: len(data) // 2])
    (tmp_path / 'last_checkpoint').write_text(latest)
    with caplog.at_level(logging.WARNING, logger='resume'):
        assert resolve_resume(str(tmp_path), logger=logging.getLogger('resume')) == good
    assert 'falling back' in caplog.text and 'epoch_2.pth (truncated' in caplog.text


def test_resume_with_only_broken_checkpoints_is_an_error(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    with pytest.raises(FileNotFoundError, match=r'no usable checkpoint.*epoch_1.pth.*empty'):
        resolve_resume(str(tmp_path))


def test_resume_in_an_empty_work_dir_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger='resume'):
        assert resolve_resume(str(tmp_path), logger=logging.getLogger('resume')) is None
    assert 'nothing to resume' in caplog.text and str(tmp_path) in caplog.text


def test_explicit_resume_of_a_truncated_file_names_it(tmp_path):
    bad = tmp_path / 'epoch_3.pth'
    save(bad, 3)
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(ValueError, match='epoch_3.pth is truncated'):
        check_resume_file(str(bad))


@pytest.mark.slow
def test_train_resume_after_an_interrupted_save(tmp_path, tiny_demo):  # noqa: F811
    """Train 2 epochs, cut the latest checkpoint, resume: continues from epoch 1."""
    wd = str(tmp_path / 'wd')
    cfg = demo_cfg(tiny_demo, wd)
    cfg.train_cfg.max_epochs = 2
    cfg.default_hooks.checkpoint.max_keep_ckpts = 3
    make_runner(cfg).train()
    ckpt = torch.load(f'{wd}/epoch_2.pth', weights_only=False)
    assert ckpt['meta'][META_KEY]['backbone']['name'] == 'GPUNet-0'
    data = open(f'{wd}/epoch_2.pth', 'rb').read()
    open(f'{wd}/epoch_2.pth', 'wb').write(data[: len(data) // 3])
    cfg = demo_cfg(tiny_demo, wd)
    cfg.train_cfg.max_epochs = 3
    cfg.resume = True
    runner = make_runner(cfg)
    assert cfg.load_from.endswith('epoch_1.pth')
    runner.train()
    assert torch.load(f'{wd}/epoch_3.pth', weights_only=False)['meta']['epoch'] == 3
