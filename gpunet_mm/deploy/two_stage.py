"""Two-stage detectors (Faster / Mask R-CNN) in one traced graph: RPN, RoIAlign, bbox head.

mmdet's ``TwoStageDetector.predict`` runs ``rpn_head.predict`` (per level: sigmoid
objectness, ``nms_pre`` best, ``DeltaXYWHBBoxCoder`` decode, then NMS *per level* and the
``max_per_img`` best proposals), ``roi_head.predict_bbox`` (``SingleRoIExtractor``: each RoI
pooled by RoIAlign on the level its scale maps to, then the bbox head's softmax scores and
class-specific deltas) and mmdet's ``multiclass_nms``. Here the same steps are written with
ops every backend has:

* RPN NMS per level = the ONNX ``NonMaxSuppression`` with the level as the class (the
  shared :func:`~gpunet_mm.deploy.nms.multiclass_nms`), padded to ``max_per_img`` rows;
* the multi-level RoI extractor = torchvision's ``roi_align`` (ONNX ``RoiAlign``, opset 16
  ``half_pixel`` for mmcv's ``aligned=True``, adaptive sampling for ``sampling_ratio=0``) on
  every level, each RoI keeping the level the extractor's own ``map_roi_levels`` picks;
* decoding by mmdet's ``delta2bbox`` with each coder's settings; padded proposals score 0.

Mask R-CNN exports its boxes (``dets``/``labels``) and, with ``DeployConfig(masks=True)``,
``masks``: each detection's RoI mask as mmdeploy exports it, i.e. the mask head
(``FCNMaskHead``) on features pooled by the mask RoI extractor at the detection's box, the
sigmoid of its class's channel (``[B, N, 28, 28]`` in mmdet's default), *not* pasted into
the image (pasting is a per-detection image-sized resample that belongs after the graph,
as mmdet's ``_do_paste_mask`` / mmdeploy's post-processing do; see docs/deploy.md).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .heads import SUPPORTED_TWO_STAGE, UnsupportedModelError, decode_deltas
from .nms import multiclass_nms


def check_two_stage(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` naming the module the export cannot follow."""
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    name = type(model).__name__

    def fail(what: str, got: object) -> UnsupportedModelError:
        return UnsupportedModelError(
            f'{what} ({got}) of {name} is not supported for end-to-end export; supported: '
            + SUPPORTED_TWO_STAGE
        )

    rpn = getattr(model, 'rpn_head', None)
    if type(rpn) is not RPNHead:
        raise fail('model.rpn_head', type(rpn).__name__)
    if not rpn.use_sigmoid_cls or type(rpn.bbox_coder).__name__ != 'DeltaXYWHBBoxCoder':
        raise fail('model.rpn_head settings', 'softmax or a coder other than DeltaXYWHBBoxCoder')
    roi = getattr(model, 'roi_head', None)
    if type(roi) not in (StandardRoIHead,):
        raise fail('model.roi_head', type(roi).__name__)
    ext = roi.bbox_roi_extractor
    if type(ext) is not SingleRoIExtractor:
        raise fail('model.roi_head.bbox_roi_extractor', type(ext).__name__)
    layer = ext.roi_layers[0]
    if type(layer).__name__ != 'RoIAlign' or getattr(layer, 'pool_mode', 'avg') != 'avg':
        raise fail('model.roi_head.bbox_roi_extractor.roi_layer', type(layer).__name__)
    head = roi.bbox_head
    if type(head.bbox_coder).__name__ != 'DeltaXYWHBBoxCoder' or head.custom_cls_channels:
        raise fail('model.roi_head.bbox_head', type(head).__name__)
    if getattr(roi, 'with_shared_head', False):
        raise fail('model.roi_head.shared_head', type(roi.shared_head).__name__)


def check_mask_branch(model: nn.Module) -> None:
    """The mask branch the ``masks`` output follows: a mask head (``FCNMaskHead`` family) on a
    ``SingleRoIExtractor`` with ``RoIAlign``; else :class:`UnsupportedModelError`."""
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    roi = getattr(model, 'roi_head', None)
    name = type(model).__name__
    if roi is None or not getattr(roi, 'with_mask', False):
        raise UnsupportedModelError(
            f'masks=True: {name} has no mask head; allowed: a Mask R-CNN (roi_head.mask_head), '
            'or masks=False'
        )
    ext, head = roi.mask_roi_extractor, roi.mask_head
    layer = ext.roi_layers[0] if type(ext) is SingleRoIExtractor else None
    if layer is None or type(layer).__name__ != 'RoIAlign' or not isinstance(head, FCNMaskHead):
        raise UnsupportedModelError(
            f'masks=True: the mask branch of {name} ({type(ext).__name__}, '
            f'{type(head).__name__}) is not supported for export; supported: a '
            'SingleRoIExtractor with RoIAlign and an FCNMaskHead'
        )


def mask_size(model: nn.Module) -> Tuple[int, int]:
    """``(h, w)`` of the ``masks`` output: the mask extractor's RoI size, times the mask
    head's upsampling (28x28 for mmdet's Mask R-CNN)."""
    roi = model.roi_head
    h, w = (int(v) for v in roi.mask_roi_extractor.roi_layers[0].output_size)
    head = roi.mask_head
    scale = int(head.scale_factor or 1) if getattr(head, 'upsample', None) is not None else 1
    return h * scale, w * scale


class TwoStageCandidates(nn.Module):
    """Features -> (boxes ``[B, P*C, 4]``, scores ``[B, P*C, C]``) for the final class-aware
    NMS: each proposal's class-specific box carries only its own class's score."""

    def __init__(self, model: nn.Module, featmap_sizes: Optional[List[Tuple[int, int]]]) -> None:
        super().__init__()
        check_two_stage(model)
        self.model = model
        rpn = model.rpn_head
        cfg = model.test_cfg.rpn
        self.rpn_nms_pre = int(cfg.get('nms_pre', -1))
        self.rpn_max = int(cfg.get('max_per_img', 1000))
        self.rpn_iou = float(cfg.nms.iou_threshold)
        self.rpn_min_size = float(cfg.get('min_bbox_size', -1))
        self.rpn_coder = rpn.bbox_coder
        gen = rpn.prior_generator
        self.num_levels = gen.num_levels
        self.level_strides = [tuple(float(v) for v in s) for s in gen.strides]
        self.num_base_priors = [int(n) for n in gen.num_base_priors]
        for i, base in enumerate(gen.base_anchors):
            self.register_buffer(f'base_anchors_{i}', base.float().clone())
        self.static = featmap_sizes is not None
        if featmap_sizes is not None:
            priors = gen.grid_priors(featmap_sizes, dtype=torch.float32, device='cpu')
            for i, p in enumerate(priors):
                self.register_buffer(f'static_priors_{i}', p.float())
        roi = model.roi_head
        head = roi.bbox_head
        self.num_classes = int(head.num_classes)
        self.class_agnostic = bool(head.reg_class_agnostic)
        self.bbox_coder = head.bbox_coder

    # ------------------------------------------------------------------ RPN
    def _anchors(self, level: int, feat: Tensor) -> Tensor:
        if self.static:
            return getattr(self, f'static_priors_{level}')
        h, w = feat.shape[-2], feat.shape[-1]
        sw, sh = self.level_strides[level]
        sx = torch.arange(w, device=feat.device, dtype=torch.float32) * sw
        sy = torch.arange(h, device=feat.device, dtype=torch.float32) * sh
        yy, xx = torch.meshgrid(sy, sx, indexing='ij')
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        base = getattr(self, f'base_anchors_{level}')
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

    def proposals(self, feats: Tuple[Tensor, ...], clip) -> Tuple[Tensor, Tensor]:
        """``[B, max_per_img, 4]`` proposals and their validity (padding rows are False)."""
        cls_scores, bbox_preds = self.model.rpn_head(feats)
        bsz = cls_scores[0].shape[0]
        boxes, scores = [], []
        for level, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            s = cls.permute(0, 2, 3, 1).reshape(bsz, -1).sigmoid()
            r = reg.permute(0, 2, 3, 1).reshape(bsz, -1, 4)
            anchors = self._anchors(level, cls)
            n = s.shape[1]
            if 0 < self.rpn_nms_pre < n:
                s, idx = s.topk(self.rpn_nms_pre, dim=1)
                r = torch.gather(r, 1, idx.unsqueeze(-1).expand(-1, -1, 4))
                a = anchors[idx]
            else:
                a = anchors.unsqueeze(0).expand(bsz, -1, -1)
            b = decode_deltas(None, self.rpn_coder, a.reshape(-1, 4), r.reshape(-1, 4), None)
            b = clip(b.reshape(bsz, -1, 4))
            if self.rpn_min_size >= 0:
                wh = b[..., 2:] - b[..., :2]
                s = s * (wh > self.rpn_min_size).all(dim=-1).to(s.dtype)
            # the level is the NMS class: mmdet's batched_nms over level ids
            onehot = torch.zeros((1, 1, self.num_levels), dtype=s.dtype, device=s.device) + (
                torch.arange(self.num_levels, device=s.device) == level
            ).to(s.dtype)
            boxes.append(b)
            scores.append(s.unsqueeze(-1) * onehot)
        dets, labels = multiclass_nms(
            torch.cat(boxes, dim=1),
            torch.cat(scores, dim=1),
            iou_thr=self.rpn_iou,
            score_thr=0.0,
            max_detections=self.rpn_max,
        )
        return dets[..., :4], labels >= 0

    # ------------------------------------------------------------------ RoI head
    def roi_features(
        self, feats: Tuple[Tensor, ...], proposals: Tensor, extractor: Optional[nn.Module] = None
    ) -> Tensor:
        """``[B*P, C, h, w]``: each box of ``proposals`` (``[B, P, 4]``) pooled by
        ``extractor`` (default: the bbox RoI extractor) with its own settings (output size,
        sampling ratio, ``aligned``, each level's scale, ``map_roi_levels``)."""
        from torchvision.ops import roi_align

        ext = self.model.roi_head.bbox_roi_extractor if extractor is None else extractor
        bsz, p = proposals.shape[:2]
        boxes = proposals.reshape(-1, 4)
        batch_idx = torch.arange(bsz, device=boxes.device, dtype=boxes.dtype)
        batch_idx = batch_idx.unsqueeze(1).expand(bsz, p).reshape(-1, 1)
        rois = torch.cat([batch_idx, boxes], dim=1)
        num_inputs = len(ext.roi_layers)
        target = ext.map_roi_levels(rois, num_inputs)
        out = None
        for level, layer in enumerate(ext.roi_layers):
            pooled = roi_align(
                feats[level],
                rois,
                tuple(int(v) for v in layer.output_size),
                spatial_scale=float(layer.spatial_scale),
                sampling_ratio=int(layer.sampling_ratio),
                aligned=bool(layer.aligned),
            )
            mask = (target == level).to(pooled.dtype).reshape(-1, 1, 1, 1)
            out = pooled * mask if out is None else out + pooled * mask
        return out

    def masks(self, feats: Tuple[Tensor, ...], boxes: Tensor, labels: Tensor) -> Tensor:
        """``[B, N, h, w]``: the mask head's sigmoid for each detection's class, on features
        pooled at its box (what mmdet's ``predict_mask`` computes before pasting)."""
        roi = self.model.roi_head
        bsz, n = boxes.shape[:2]
        pred = roi.mask_head(self.roi_features(feats, boxes, roi.mask_roi_extractor))
        h, w = pred.shape[-2], pred.shape[-1]
        if roi.mask_head.class_agnostic:
            chosen = pred[:, 0]
        else:  # padding rows (label -1) read class 0; their label marks them
            idx = labels.reshape(-1, 1, 1, 1).clamp(min=0).expand(-1, 1, h, w)
            chosen = torch.gather(pred, 1, idx).squeeze(1)
        return chosen.sigmoid().reshape(bsz, n, h, w)

    def forward(self, feats: Tuple[Tensor, ...], clip) -> Tuple[Tensor, Tensor]:
        proposals, valid = self.proposals(feats, clip)
        bsz, p = proposals.shape[:2]
        roi_feats = self.roi_features(feats, proposals)
        cls_score, bbox_pred = self.model.roi_head.bbox_head(roi_feats)
        scores = cls_score.softmax(dim=-1)[:, : self.num_classes]
        scores = scores * valid.reshape(-1, 1).to(scores.dtype)
        c = 1 if self.class_agnostic else self.num_classes
        priors = proposals.reshape(-1, 1, 4).expand(-1, c, 4).reshape(-1, 4)
        boxes = decode_deltas(None, self.bbox_coder, priors, bbox_pred.reshape(-1, 4), None)
        boxes = clip(boxes.reshape(bsz, p * c, 4))
        scores = scores.reshape(bsz, p, self.num_classes)
        if self.class_agnostic:
            return boxes, scores
        # class-specific boxes: row (proposal, class) carries only that class's score
        eye = torch.eye(self.num_classes, dtype=scores.dtype, device=scores.device)
        scores = (scores.unsqueeze(-1) * eye).reshape(bsz, p * self.num_classes, self.num_classes)
        return boxes, scores
