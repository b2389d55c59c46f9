"""Multi-class NMS that exports to a backend's own operator and also runs in PyTorch.

Two flavours, one output contract (``dets [B, N, 5]``, ``labels [B, N]``, ``N`` fixed to
``max_detections``, zero boxes and label ``-1`` where fewer were kept, like mmdeploy):

* ``onnx``: the standard ONNX ``NonMaxSuppression`` (opset >= 10), which ONNX Runtime runs
  natively and TensorRT >= 8.6 maps to its INMSLayer; then a gather/top-k to the fixed N.
* ``efficient``: TensorRT's built-in ``EfficientNMS_TRT`` plugin (in libnvinfer_plugin, so
  there is no plugin library to compile), which already returns fixed-size padded outputs.

Each is a ``torch.autograd.Function``: ``symbolic`` writes the ONNX node, ``forward`` is a
PyTorch reference (torchvision's NMS) with the operator's semantics, so the same wrapper
runs eagerly (the torch latency backend, parity tests) and traces to ONNX.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

NMS_FLAVOURS = ('onnx', 'efficient')


def _per_class_nms(
    boxes: Tensor, scores: Tensor, iou_thr: float, score_thr: float, max_per_class: int
) -> Tensor:
    """Reference: ``[K, 3]`` (batch, class, box) rows, like ONNX NonMaxSuppression.

    boxes ``[B, N, 4]``, scores ``[B, C, N]``; keeps ``score > score_thr`` (strict, as ONNX
    Runtime and mmdet do) and at most ``max_per_class`` boxes per (batch, class).
    """
    from torchvision.ops import nms

    rows = []
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            keep = torch.nonzero(s > score_thr).flatten()
            if keep.numel() == 0:
                continue
            kept = keep[nms(boxes[b, keep].float(), s[keep].float(), iou_thr)][:max_per_class]
            rows.append(
                torch.stack([torch.full_like(kept, b), torch.full_like(kept, c), kept], dim=1)
            )
    if not rows:
        return torch.zeros((0, 3), dtype=torch.long, device=boxes.device)
    return torch.cat(rows)


class ONNXNonMaxSuppression(torch.autograd.Function):
    """``NonMaxSuppression(boxes [B,N,4], scores [B,C,N]) -> [K, 3]`` int64."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou_thr: float, score_thr: float):
        return _per_class_nms(boxes, scores, iou_thr, score_thr, max_per_class)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_thr, score_thr):
        max_t = g.op('Constant', value_t=torch.tensor([max_per_class], dtype=torch.long))
        iou_t = g.op('Constant', value_t=torch.tensor([iou_thr], dtype=torch.float))
        thr_t = g.op('Constant', value_t=torch.tensor([score_thr], dtype=torch.float))
        return g.op('NonMaxSuppression', boxes, scores, max_t, iou_t, thr_t)


class TRTEfficientNMS(torch.autograd.Function):
    """TensorRT ``EfficientNMS_TRT`` v1: boxes ``[B,N,4]`` (x1y1x2y2), scores ``[B,N,C]``.

    Returns ``num_detections [B,1]``, ``detection_boxes [B,K,4]``, ``detection_scores [B,K]``,
    ``detection_classes [B,K]`` (int32), zero-padded beyond ``num_detections``.
    """

    @staticmethod
    def forward(ctx, boxes, scores, max_out: int, iou_thr: float, score_thr: float):
        bsz = boxes.shape[0]
        num = torch.zeros((bsz, 1), dtype=torch.int32)
        out_boxes = boxes.new_zeros((bsz, max_out, 4))
        out_scores = scores.new_zeros((bsz, max_out))
        out_classes = torch.zeros((bsz, max_out), dtype=torch.int32)
        sel = _per_class_nms(boxes, scores.transpose(1, 2), iou_thr, score_thr, max_out)
        for b in range(bsz):
            rows = sel[sel[:, 0] == b]
            s = scores[b, rows[:, 2], rows[:, 1]]
            order = s.argsort(descending=True)[:max_out]
            n = order.numel()
            num[b, 0] = n
            out_boxes[b, :n] = boxes[b, rows[order, 2]]
            out_scores[b, :n] = s[order]
            out_classes[b, :n] = rows[order, 1].int()
        return num, out_boxes, out_scores, out_classes

    @staticmethod
    def symbolic(g, boxes, scores, max_out, iou_thr, score_thr):
        outs = g.op(
            'TRT::EfficientNMS_TRT',
            boxes,
            scores,
            background_class_i=-1,
            box_coding_i=0,
            iou_threshold_f=float(iou_thr),
            max_output_boxes_i=int(max_out),
            plugin_version_s='1',
            score_activation_i=0,
            score_threshold_f=float(score_thr),
            outputs=4,
        )
        num, det_boxes, det_scores, det_classes = outs
        # custom-domain outputs get no shape from ONNX inference: declare them
        bsz = boxes.type().sizes()[0] if boxes.type().sizes() else None
        num.setType(boxes.type().with_dtype(torch.int32).with_sizes([bsz, 1]))
        det_boxes.setType(boxes.type().with_sizes([bsz, max_out, 4]))
        det_scores.setType(boxes.type().with_sizes([bsz, max_out]))
        det_classes.setType(boxes.type().with_dtype(torch.int32).with_sizes([bsz, max_out]))
        return num, det_boxes, det_scores, det_classes


def multiclass_nms(
    boxes: Tensor,
    scores: Tensor,
    *,
    iou_thr: float,
    score_thr: float,
    max_detections: int,
    flavour: str = 'onnx',
) -> Tuple[Tensor, Tensor]:
    """Class-aware NMS to fixed-size ``dets [B, N, 5]`` (x1, y1, x2, y2, score), ``labels``.

    Args:
        boxes: ``[B, M, 4]`` decoded boxes (one per candidate, shared by all classes).
        scores: ``[B, M, C]`` per-class scores; entries that must not survive are <= thr.
        flavour: ``'onnx'`` or ``'efficient'`` (see the module docstring).
    """
    if flavour not in NMS_FLAVOURS:
        raise ValueError(f'nms flavour: got {flavour!r}; allowed: {", ".join(NMS_FLAVOURS)}')
    bsz = boxes.shape[0]
    if flavour == 'efficient':
        num, b, s, c = TRTEfficientNMS.apply(boxes, scores, max_detections, iou_thr, score_thr)
        valid = torch.arange(max_detections, device=boxes.device)[None, :] < num.long()
        dets = torch.cat([b, s.unsqueeze(-1)], dim=-1) * valid.unsqueeze(-1).to(b.dtype)
        labels = torch.where(valid, c.long(), torch.full_like(c.long(), -1))
        return dets, labels

    sel = ONNXNonMaxSuppression.apply(
        boxes, scores.transpose(1, 2).contiguous(), max_detections, iou_thr, score_thr
    )
    b_idx, c_idx, box_idx = sel[:, 0], sel[:, 1], sel[:, 2]
    kept_scores = scores[b_idx, box_idx, c_idx]
    kept = torch.cat([boxes[b_idx, box_idx], kept_scores.unsqueeze(-1)], dim=-1)  # [K, 5]
    # one row per image: scores of other images' rows become -1, then pad so that a top-k
    # of fixed size max_detections always exists, whatever K is
    owner = b_idx.unsqueeze(0) == torch.arange(bsz, device=boxes.device).unsqueeze(1)
    per_img = torch.where(
        owner, kept_scores.unsqueeze(0), torch.full_like(owner, -1, dtype=kept_scores.dtype)
    )
    pad = per_img.new_full((bsz, max_detections), -1.0)
    top_scores, top_idx = torch.cat([per_img, pad], dim=1).topk(max_detections, dim=1)
    kept = torch.cat([kept, kept.new_zeros((max_detections, 5))], dim=0)
    kept_labels = torch.cat([c_idx, c_idx.new_full((max_detections,), -1)], dim=0)
    valid = top_scores > 0
    dets = kept[top_idx] * valid.unsqueeze(-1).to(kept.dtype)
    labels = torch.where(valid, kept_labels[top_idx], torch.full_like(top_idx, -1))
    return dets, labels
