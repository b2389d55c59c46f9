"""Compare exported detectors with ``model.predict``: inputs from real images, box matching.

Parity must be meaningful: equal shapes prove nothing, and an untrained detector's scores
are all near the focal-loss prior. So the comparison matches each reference detection (by
score rank) to an exported one with the same label, IoU above a bar and a close score, and
:func:`seed_head` gives random-init heads a spread of confident, distinct scores.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn


def seed_head(
    model: nn.Module,
    inputs: torch.Tensor,
    seed: int = 0,
    cls_std: float = 0.05,
    fraction: float = 0.003,
    score: float = 0.3,
) -> None:
    """Re-initialise the classification output conv so a random detector has confident boxes.

    With the focal-loss prior every score is ~0.01 (below a 0.05 threshold) and nothing is
    detected. Random weights give the logits a spread; the bias is then set from the logits
    on ``inputs`` (a normalised batch) so that about ``fraction`` of the (prior, class) pairs
    score above ``score``: enough confident, distinct candidates to exercise NMS and top-k.
    """
    head = model.bbox_head
    conv = getattr(head, 'retina_cls', None) or getattr(head, 'conv_cls', None)
    if conv is None:
        raise ValueError(f'seed_head: {type(head).__name__} has no retina_cls/conv_cls conv')
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * cls_std)
        conv.bias.zero_()
        logits = torch.cat([c.flatten() for c in head(model.extract_feat(inputs))[0]])
        q = torch.quantile(logits[torch.randperm(len(logits), generator=g)[:100000]], 1 - fraction)
        conv.bias.fill_(float(np.log(score / (1 - score)) - q))


def load_images(
    paths: Sequence[str], shape: Tuple[int, int]
) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """Images resized to exactly ``shape`` (H, W): raw float batch + mmdet packed inputs.

    The raw batch (0-255, BGR as mmcv loads it) feeds the exported graph; the packed dict
    feeds ``model.data_preprocessor`` and then ``model.predict``. Resizing without keeping
    the ratio makes ``img_shape`` equal the input, so no padding separates the two paths.
    """
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate

    h, w = shape
    pipe = Compose(
        [
            dict(type='mmdet.LoadImageFromFile'),
            dict(type='mmdet.Resize', scale=(w, h), keep_ratio=False),
            dict(
                type='mmdet.PackDetInputs',
                meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
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
) -> Dict[str, float]:
    """Fraction of the reference's ``top_k`` detections found in ``dets``/``labels``.

    A reference box is matched by an exported one with the same label, IoU >= ``iou_thr``
    and ``|score diff| <= score_tol`` (each exported box used once). Also reports the worst
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
        ok = (ious >= iou_thr) & (ds <= score_tol)
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
}
