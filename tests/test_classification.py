"""GPUNet classifiers built from the shipped mmpretrain configs."""

import os

import pytest
import torch
from mmengine.config import Config

from gpunet_mm.apis import build_model
from gpunet_mm.models import TIER_SHORT, get_tier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_path(short):
    folder = os.path.join(ROOT, 'configs', 'gpunet')
    names = [n for n in os.listdir(folder) if n.startswith(f'gpunet-{short}_8xb')]
    assert len(names) == 1, names
    return os.path.join(folder, names[0])


@pytest.mark.parametrize('short', TIER_SHORT)
def test_config_builds_classifier_with_release_tail(short):
    cfg = Config.fromfile(config_path(short))
    arch = get_tier(cfg.model.backbone.tier)
    assert cfg.train_pipeline[1]['scale'] == arch.resolution
    assert cfg.test_pipeline[-2]['crop_size'] == arch.resolution
    model = build_model(cfg.model, 'mmpretrain').eval()
    # the head widths are derived from the arch, not written in the config
    assert cfg.model.head.in_channels is None
    assert model.head.fc.in_features == (arch.tail_channels[-1])
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        logits = model(x, mode='tensor')
    assert logits.shape == (2, 1000)
    # loss path with labels
    from mmpretrain.structures import DataSample

    model.train()
    samples = [DataSample().set_gt_label(3), DataSample().set_gt_label(7)]
    losses = model(x, samples, mode='loss')
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0


def test_head_rejects_bad_values():
    from gpunet_mm.models.heads import GPUNetClsHead

    with pytest.raises(ValueError, match='num_classes: got 0'):
        GPUNetClsHead(num_classes=0, in_channels=8)
    with pytest.raises(ValueError, match='dropout: got 1.5'):
        GPUNetClsHead(num_classes=3, in_channels=8, dropout=1.5)


def test_gpunet_classifier_checks_given_head_widths():
    base = dict(
        type='GPUNetClassifier',
        backbone=dict(type='GPUNet', tier='GPUNet-D1'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='GPUNetClsHead', num_classes=5, in_channels=1152),
    )
    model = build_model(base, 'mmpretrain')
    assert type(model).__name__ == 'ImageClassifier'
    assert model.head.hidden[0].weight.shape == (1984, 1152)
    with pytest.raises(ValueError, match=r'head.in_channels=1280 but GPUNet-D1 gives 1152'):
        build_model(dict(base, head=dict(base['head'], in_channels=1280)), 'mmpretrain')
    with pytest.raises(ValueError, match=r"backbone type 'ResNet'; allowed: 'GPUNet'"):
        build_model(dict(base, backbone=dict(type='ResNet', depth=18)), 'mmpretrain')
