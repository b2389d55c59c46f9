"""GPUNet inside real mmdet detectors built from the shipped configs (CPU)."""

import glob
import os

import pytest
import torch
from mmengine.config import Config

from gpunet_mm.apis import build_model
from gpunet_mm.models import TIER_SHORT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_detector(config_name: str, num_classes: int = 3):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'gpunet_det', config_name))
    cfg.model.bbox_head.num_classes = num_classes
    return build_model(cfg.model, 'mmdet')


def run_loss_and_predict(model, size=128):
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(0)
    packed = demo_mm_inputs(2, [(3, size, size)] * 2, num_items=[3, 2], num_classes=3)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(
        v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items() if 'loss' in k
    )
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        preds = model(**data, mode='predict')
    assert len(preds) == 2
    for p in preds:
        inst = p.pred_instances
        assert inst.bboxes.shape[-1] == 4 and len(inst.bboxes) == len(inst.scores)
        assert ((inst.labels >= 0) & (inst.labels < 3)).all()
    return losses


@pytest.mark.parametrize('short', TIER_SHORT)
def test_retinanet_every_tier_loss_and_predict(short):
    model = build_detector(f'retinanet_gpunet-{short}_fpn_1x_coco.py')
    assert model.backbone.out_strides == (8, 16, 32)
    assert list(model.backbone.out_channels) == list(model.neck.in_channels)
    run_loss_and_predict(model)


def test_fcos_second_family():
    model = build_detector('fcos_gpunet-2_fpn_1x_coco.py')
    losses = run_loss_and_predict(model)
    assert {'loss_cls', 'loss_bbox', 'loss_centerness'} <= set(losses)


def test_every_shipped_config_parses():
    # configs/nas holds search spaces, not models (tests/nas/test_space.py reads them)
    configs = [
        p
        for p in glob.glob(os.path.join(ROOT, 'configs', '*', '*.py'))
        if '_base_' not in p and os.sep + 'nas' + os.sep not in p
    ]
    assert len(configs) >= 7 + 8 + 1
    for path in configs:
        cfg = Config.fromfile(path)
        assert cfg.model.backbone.type == 'GPUNet'
        assert cfg.default_scope in ('mmdet', 'mmpretrain')
        assert cfg.custom_imports.imports == ['gpunet_mm']
