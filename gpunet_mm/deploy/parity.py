"""Compare exported detectors with ``model.predict``: inputs from real images, box matching.

Parity must be meaningful: equal shapes prove nothing, and an untrained detector's scores
are all near the focal-loss prior. So the comparison matches each reference detection (by
score rank) to an exported one with the same label, IoU above a bar and a close score, and
:func:`seed_head` gives random-init heads a spread of confident, distinct scores.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

#: classification output convs of the supported heads (a conv, or one per level)
CLS_CONVS = (
    'retina_cls', 'conv_cls', 'atss_cls', 'gfl_cls', 'tood_cls', 'rtm_cls',
    'multi_level_conv_cls',
)  # fmt: skip
#: convs whose output the thresholded score also contains (YOLOX's objectness, TOOD's
#: probability map): re-initialised like the class convs (bias 0) so they do not cap it
FACTOR_CONVS = ('multi_level_conv_obj', 'cls_prob_module')


def _output_convs(head: nn.Module, names: Sequence[str]) -> List[nn.Conv2d]:
    convs: List[nn.Conv2d] = []
    for name in names:
        mod = getattr(head, name, None)
        if isinstance(mod, nn.Conv2d):
            convs.append(mod)
        elif isinstance(mod, nn.ModuleList):
            convs.extend(m for m in mod if isinstance(m, nn.Conv2d))
        elif isinstance(mod, nn.Sequential):  # its output conv
            convs.extend([m for m in mod if isinstance(m, nn.Conv2d)][-1:])
    return convs


def _thresholded_scores(model: nn.Module, feats: Any) -> torch.Tensor:
    """The scores the score threshold applies to, as the exporter computes them."""
    from .heads import exporter_for

    exp = exporter_for(model)
    outs = model.bbox_head(feats)
    flat = []
    for level, cls in enumerate(outs[0]):
        s = cls.permute(0, 2, 3, 1).reshape(cls.shape[0], -1, model.bbox_head.cls_out_channels)
        s = s.sigmoid() if exp.sigmoid else s
        if exp.score_factor and exp.factor_in_threshold:
            s = s * outs[2][level].permute(0, 2, 3, 1).reshape(cls.shape[0], -1, 1).sigmoid()
        flat.append(s.flatten())
    return torch.cat(flat)


def _bisect_bias(set_bias, scores, fraction: float, score: float) -> None:
    """Find the bias for which about ``fraction`` of ``scores()`` exceed ``score``."""
    lo, hi = -30.0, 30.0
    for _ in range(30):
        mid = (lo + hi) / 2
        set_bias(mid)
        if float((scores() > score).float().mean()) > fraction:
            hi = mid
        else:
            lo = mid
    set_bias((lo + hi) / 2)


def _seed_rcnn(model, inputs, seed, cls_std, fraction, score) -> None:
    """:func:`seed_head` for a two-stage detector: the R-CNN classifier's foreground biases
    (background stays 0) against the softmax scores of the graph's own proposals."""
    from .two_stage import TwoStageCandidates

    head = model.roi_head.bbox_head
    fc = head.fc_cls
    n = head.num_classes
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * cls_std)
        fc.bias.zero_()
        ts = TwoStageCandidates(model, None)
        feats = model.extract_feat(inputs)
        proposals, valid = ts.proposals(feats, lambda b: b)
        roi_feats = ts.roi_features(feats, proposals)

        def set_bias(v: float) -> None:
            fc.bias[:n] = v

        def scores() -> torch.Tensor:
            cls = head(roi_feats)[0].softmax(-1)[:, :n]
            return cls[valid.reshape(-1)]

        _bisect_bias(set_bias, scores, fraction, score)


def seed_head(
    model: nn.Module,
    inputs: torch.Tensor,
    seed: int = 0,
    cls_std: float = 0.05,
    fraction: float = 0.003,
    score: float = 0.3,
) -> None:
    """Re-initialise the classification output convs so a random detector has confident boxes.

    With the focal-loss prior every score is ~0.01 (below a 0.05 threshold) and nothing is
    detected. Random weights give the logits a spread; one bias shared by the class convs is
    then found by bisection on ``inputs`` (a normalised batch) so that about ``fraction`` of
    the (prior, class) scores the threshold applies to (after the head's own activation and
    any objectness it multiplies in) exceed ``score``: enough confident, distinct
    candidates to exercise NMS and top-k, for every supported head.
    """
    if hasattr(model, 'roi_head'):
        _seed_rcnn(model, inputs, seed, cls_std, fraction, score)
        return
    head = model.bbox_head
    convs = _output_convs(head, CLS_CONVS)
    if not convs:
        raise ValueError(
            f'seed_head: {type(head).__name__} has no classification output conv (looked for '
            + ', '.join(CLS_CONVS)
            + ')'
        )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in convs + _output_convs(head, FACTOR_CONVS):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * cls_std)
            conv.bias.zero_()
        feats = model.extract_feat(inputs)

        def set_bias(v: float) -> None:
            for conv in convs:
                conv.bias.fill_(v)

        _bisect_bias(set_bias, lambda: _thresholded_scores(model, feats), fraction, score)


def load_images(
    paths: Sequence[str], shape: Tuple[int, int]
) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """Images resized to exactly ``shape`` (H, W): raw float batch + mmdet packed inputs.

    The raw batch (0-255, BGR as mmcv loads it) feeds the exported graph; the packed dict
    feeds ``model.data_preprocessor`` and then ``model.predict``. Resizing without keeping
    the ratio makes ``img_shape`` equal the input, so no padding separates the two paths.
    """
    from mmcv.transforms import Compose, LoadImageFromFile
    from mmdet.datasets.transforms import PackDetInputs, Resize
    from mmengine.dataset import pseudo_collate

    from ..apis.runner import check_image

    for p in paths:  # a zero-byte file would end in a decoder assertion without its name
        check_image(p)
    h, w = shape
    # the transform classes themselves: registry names resolve through the current default
    # scope, which an mmengine Runner in the same process (a training before) may change
    pipe = Compose(
        [
            LoadImageFromFile(),
            Resize(scale=(w, h), keep_ratio=False),
            PackDetInputs(
                meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
            ),
        ]
    )
    items = [pipe(dict(img_path=p, img_id=i)) for i, p in enumerate(paths)]
    packed = pseudo_collate(items)
    raw = torch.stack([it['inputs'] for it in items]).float()
    return raw, packed


@torch.no_grad()
def torch_predict(model: nn.Module, packed: Dict[str, Any]) -> List[Dict[str, np.ndarray]]:
    """``model.predict(rescale=False)`` as numpy boxes/scores/labels per image."""
    data = model.data_preprocessor(packed, False)
    preds = model.predict(data['inputs'], data['data_samples'], rescale=False)
    return [
        dict(
            boxes=p.pred_instances.bboxes.cpu().numpy(),
            scores=p.pred_instances.scores.cpu().numpy(),
            labels=p.pred_instances.labels.cpu().numpy(),
        )
        for p in preds
    ]


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    return inter / np.maximum(_area(box) + _area(boxes) - inter, 1e-9)


def match_detections(
    ref: Dict[str, np.ndarray],
    dets: np.ndarray,
    labels: np.ndarray,
    top_k: int = 20,
    iou_thr: float = 0.95,
    score_tol: float = 1e-3,
    box_tol: float = 1e-2,
) -> Dict[str, float]:
    """Fraction of the reference's ``top_k`` detections found in ``dets``/``labels``.

    A reference box is matched by an exported one with the same label, IoU >= ``iou_thr``
    (or every coordinate within ``box_tol`` px: a box clipped to zero width at the border
    has IoU 0 even with itself) and ``|score diff| <= score_tol`` (each exported box used
    once). Also reports the worst
    box-coordinate and score differences of the matches.
    """
    valid = labels >= 0
    dets, labels = dets[valid], labels[valid]
    order = np.argsort(-ref['scores'], kind='stable')[:top_k]
    used = np.zeros(len(dets), bool)
    matched, max_box, max_score = 0, 0.0, 0.0
    for i in order:
        cand = np.nonzero((labels == ref['labels'][i]) & ~used)[0]
        if len(cand) == 0:
            continue
        ious = _iou(ref['boxes'][i], dets[cand, :4])
        ds = np.abs(dets[cand, 4] - ref['scores'][i])
        close = np.abs(dets[cand, :4] - ref['boxes'][i]).max(axis=1) <= box_tol
        ok = ((ious >= iou_thr) | close) & (ds <= score_tol)
        if not ok.any():
            continue
        j = cand[np.nonzero(ok)[0][np.argmax(ious[ok])]]
        used[j] = True
        matched += 1
        max_box = max(max_box, float(np.abs(dets[j, :4] - ref['boxes'][i]).max()))
        max_score = max(max_score, float(abs(dets[j, 4] - ref['scores'][i])))
    n = len(order)
    return dict(
        compared=n,
        matched=matched,
        recall=matched / n if n else 1.0,
        num_ref=int(len(ref['scores'])),
        num_exported=int(valid.sum()),
        max_box_diff=max_box,
        max_score_diff=max_score,
    )


# Detectors used by the parity tests and the deploy benchmark: the shipped configs with
# demo-sized widths (4 classes, 64-96 channels) so that CPU export and timing stay quick.
_SMALL = dict(
    neck=dict(out_channels=64),
    bbox_head=dict(num_classes=4, in_channels=64, feat_channels=64, stacked_convs=2),
)
DEMO_DETECTORS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    'retinanet_gpunet-0_demo': ('configs/demo/retinanet_gpunet-0_fpn_demo.py', {}),
    'retinanet_gpunet-2_small': (
        'configs/gpunet_det/retinanet_gpunet-2_fpn_1x_coco.py',
        dict(model=_SMALL),
    ),
    'fcos_gpunet-2_small': ('configs/gpunet_det/fcos_gpunet-2_fpn_1x_coco.py', dict(model=_SMALL)),
    'atss_gpunet-0_demo': ('configs/demo/atss_gpunet-0_fpn_demo.py', {}),
    'gfl_gpunet-0_demo': ('configs/demo/gfl_gpunet-0_fpn_demo.py', {}),
    'tood_gpunet-0_demo': ('configs/demo/tood_gpunet-0_fpn_demo.py', {}),
    'rtmdet-tiny_gpunet-0_demo': ('configs/demo/rtmdet-tiny_gpunet-0_cspnext-pafpn_demo.py', {}),
    'yolox-s_gpunet-0_demo': ('configs/demo/yolox-s_gpunet-0_pafpn_demo.py', {}),
    'faster-rcnn_gpunet-0_demo': ('configs/demo/faster-rcnn_gpunet-0_fpn_demo.py', {}),
    'mask-rcnn_gpunet-0_demo': ('configs/demo/mask-rcnn_gpunet-0_fpn_demo.py', {}),
}
#: one demo detector per supported head family (the trained parity tests and benchmark)
HEAD_DEMOS: Dict[str, str] = {
    'RetinaNet': 'configs/demo/retinanet_gpunet-0_fpn_demo.py',
    'FCOS': 'configs/demo/fcos_gpunet-0_fpn_demo.py',
    'ATSS': 'configs/demo/atss_gpunet-0_fpn_demo.py',
    'GFL': 'configs/demo/gfl_gpunet-0_fpn_demo.py',
    'TOOD': 'configs/demo/tood_gpunet-0_fpn_demo.py',
    'RTMDet-tiny': 'configs/demo/rtmdet-tiny_gpunet-0_cspnext-pafpn_demo.py',
    'YOLOX-s': 'configs/demo/yolox-s_gpunet-0_pafpn_demo.py',
    'Faster R-CNN': 'configs/demo/faster-rcnn_gpunet-0_fpn_demo.py',
    'Mask R-CNN': 'configs/demo/mask-rcnn_gpunet-0_fpn_demo.py',
}


def demo_trained_detector(
    config: str,
    work_dir: str,
    data_root: str,
    *,
    epochs: int = 4,
    size: int = 128,
    tier: str = 'GPUNet-0',
    threads: int = 1,
    cfg_options: Optional[Dict[str, Any]] = None,
) -> Tuple[Dict[str, Any], str]:
    """Train a demo detector briefly (so its boxes are real) and return (config, checkpoint).

    Parity against an untrained head compares scores near the focal-loss prior; a few
    epochs on the demo data give confident, localised boxes instead. The training goes
    through the search's own :func:`~gpunet_mm.search.trainer.train_candidate` (the tier's
    arch at ``size`` px, neck inputs wired from its level channels), so what the parity
    tests export is what a search trains. A finished run in ``work_dir`` is reused.
    """
    import json
    import os.path as osp

    from mmengine.config import Config

    from ..models.tiers import get_tier
    from ..search.trainer import candidate_config, train_candidate

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.merge_from_dict(
        {
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
            'val_dataloader.num_workers': 0,
            'val_dataloader.persistent_workers': False,
            'train_dataloader.dataset.data_root': data_root,
            'val_dataloader.dataset.data_root': data_root,
            'val_evaluator.ann_file': osp.join(data_root, 'annotations/instances_val.json'),
            'train_cfg.max_epochs': epochs,
            'train_cfg.val_interval': epochs,
            'default_hooks.checkpoint': dict(
                type='CheckpointHook', interval=epochs, max_keep_ckpts=1, save_best=None
            ),
            'default_hooks.logger.interval': 5,
        }
    )
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8)]
    arch = dict(get_tier(tier).to_dict(), resolution=size)
    cfg_dict = cfg.to_dict()
    done = osp.join(work_dir, 'trained.json')
    if osp.isfile(done):
        with open(done) as f:
            info = json.load(f)
        if osp.isfile(info.get('checkpoint') or ''):
            return candidate_config(cfg_dict, arch), info['checkpoint']
    res = train_candidate(cfg_dict, arch, work_dir, threads=threads)
    if not res.get('checkpoint'):
        raise RuntimeError(f'training {config} in {work_dir} wrote no checkpoint')
    with open(done, 'w') as f:
        json.dump({k: v for k, v in res.items() if isinstance(v, (int, float, str))}, f)
    return candidate_config(cfg_dict, arch), res['checkpoint']
