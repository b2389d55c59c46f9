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
    model = build_model(cfg.model, 'mmpretrain').eval()
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
