"""The end-to-end wrapper: detector + box decoding + NMS as one traceable module.

Graph: ``input [B, 3, H, W]`` (0-255, channel order of the model's pipeline, BGR for mmcv
loaders) -> optional BGR->RGB + mean/std -> backbone/neck/head (fp16 inside when asked) ->
per level: scores (sigmoid, times a score factor where the head has one), pre-top-k by best
class, box decoding (anchors/points baked in as constants for static shapes, generated from
the feature shape for dynamic ones) -> class-aware NMS -> ``dets [B, N, 5]`` (x1, y1, x2,
y2, score; input-pixel coordinates, i.e. ``predict(rescale=False)``) and ``labels [B, N]``
(int64, -1 where empty).

What differs between heads (activation, score factor, decode call) is the head's
:class:`~gpunet_mm.deploy.heads.HeadExporter`: boxes are decoded by the head's own code with
its own settings (e.g. mmdet's ``delta2bbox`` with the coder's means, stds,
``wh_ratio_clip`` and centre clamp, as mmdeploy's coder rewriter does); only the border clip
is done here, because the image size is a graph tensor for dynamic shapes.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .config import DeployConfig, PostProcessing
from .heads import coder_wh_ratio_clip, exporter_for  # noqa: F401 (re-exported)
from .loading import UnsupportedModelError, check_shape, head_kind, network_stride
from .nms import multiclass_nms


class End2EndDetector(nn.Module):
    """Detector + decoding + NMS as one traceable module (see the module docstring).

    Args:
        model: an mmdet single-stage detector in eval mode.
        post: resolved post-processing (no ``None`` fields).
        nms_flavour: ``'onnx'`` (NonMaxSuppression) or ``'efficient'`` (EfficientNMS_TRT).
        input_shape: ``(H, W)``; with ``dynamic=False`` priors are precomputed for it.
        dynamic: generate priors from the feature shapes at run time.
        normalize: include channel conversion and mean/std from ``model.data_preprocessor``.
        fp16: run backbone/neck/head in half precision (fp32 input, decoding and outputs).
        masks: Mask R-CNN only: also return each detection's RoI mask (``[B, N, h, w]``,
            see ``gpunet_mm/deploy/two_stage.py``).
    """

    def __init__(
        self,
        model: nn.Module,
        post: PostProcessing,
        *,
        nms_flavour: str = 'onnx',
        input_shape: Tuple[int, int] = (320, 320),
        dynamic: bool = False,
        normalize: bool = True,
        fp16: bool = False,
        masks: bool = False,
    ) -> None:
        super().__init__()
        self.kind = head_kind(model)
        two_stage = self.kind == 'two_stage'
        self.with_masks = bool(masks)
        if masks:
            from .two_stage import check_mask_branch

            check_mask_branch(model)
        self.exporter = None if two_stage else exporter_for(model)
        head = model.roi_head.bbox_head if two_stage else model.bbox_head
        if not two_stage and dynamic and not self.exporter.dynamic:
            raise UnsupportedModelError(
                f'model.bbox_head ({type(head).__name__}) builds its priors inside forward '
                'from the feature-map sizes, so a traced graph is exact at one input shape '
                'only; export it with dynamic=False'
            )
        self.model = model.half() if fp16 else model
        self.post = post
        self.nms_flavour = nms_flavour
        self.dynamic = dynamic
        self.fp16 = fp16
        self.normalize = normalize
        self.num_classes = head.num_classes if two_stage else head.cls_out_channels
        pre = model.data_preprocessor
        self.bgr_to_rgb = bool(getattr(pre, '_channel_conversion', False)) and normalize
        mean = getattr(pre, 'mean', None) if getattr(pre, '_enable_normalize', False) else None
        self.register_buffer(
            'mean',
            (mean if mean is not None else torch.zeros(3, 1, 1)).float().reshape(1, -1, 1, 1),
        )
        std = getattr(pre, 'std', None) if getattr(pre, '_enable_normalize', False) else None
        self.register_buffer(
            'std', (std if std is not None else torch.ones(3, 1, 1)).float().reshape(1, -1, 1, 1)
        )
        self.two_stage: Optional[nn.Module] = None
        if two_stage:
            from .two_stage import TwoStageCandidates

            sizes = None if dynamic else self._rpn_featmap_sizes(input_shape)
            self.two_stage = TwoStageCandidates(self.model, sizes)
            self.clip_border = True
            return
        gen = head.prior_generator
        self.level_strides = [tuple(float(v) for v in s) for s in gen.strides]
        self.num_base_priors = [int(n) for n in gen.num_base_priors]
        if self.kind == 'anchor':
            for i, base in enumerate(gen.base_anchors):
                self.register_buffer(f'base_anchors_{i}', base.float().clone())
        else:
            self.point_offset = float(gen.offset)
        self.clip_border = self.exporter.clip_border(head)
        # the coder as configured now (decoding reads its settings at trace time)
        self.bbox_coder = getattr(head, 'bbox_coder', None)
        self.static_priors: Optional[List[Tensor]] = None
        if not dynamic:
            sizes = self._featmap_sizes(input_shape)
            kw = dict(with_stride=True) if self.exporter.priors_with_stride else {}
            self.static_priors = [
                p.float() for p in gen.grid_priors(sizes, dtype=torch.float32, device='cpu', **kw)
            ]
            for i, p in enumerate(self.static_priors):
                self.register_buffer(f'static_priors_{i}', p)

    @torch.no_grad()
    def _featmap_sizes(self, shape: Tuple[int, int]) -> List[Tuple[int, int]]:
        p = next(self.model.parameters())
        x = torch.zeros((1, 3, *shape), dtype=p.dtype, device=p.device)
        with self.exporter.tracing(self.model.bbox_head):
            outs = self.model.bbox_head(self.model.extract_feat(x))
        return [tuple(t.shape[-2:]) for t in outs[0]]

    @torch.no_grad()
    def _rpn_featmap_sizes(self, shape: Tuple[int, int]) -> List[Tuple[int, int]]:
        p = next(self.model.parameters())
        x = torch.zeros((1, 3, *shape), dtype=p.dtype, device=p.device)
        outs = self.model.rpn_head(self.model.extract_feat(x))
        return [tuple(t.shape[-2:]) for t in outs[0]]

    # ------------------------------------------------------------------ priors
    def _priors(self, level: int, feat: Tensor) -> Tensor:
        if not self.dynamic:
            return getattr(self, f'static_priors_{level}')
        h, w = feat.shape[-2], feat.shape[-1]
        sw, sh = self.level_strides[level]
        off = 0.0 if self.kind == 'anchor' else self.point_offset
        sx = (torch.arange(w, device=feat.device, dtype=torch.float32) + off) * sw
        sy = (torch.arange(h, device=feat.device, dtype=torch.float32) + off) * sh
        yy, xx = torch.meshgrid(sy, sx, indexing='ij')
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        if self.kind == 'point':
            if self.exporter.priors_with_stride:
                return torch.stack(
                    [xx, yy, torch.full_like(xx, sw), torch.full_like(yy, sh)], dim=-1
                )
            return torch.stack([xx, yy], dim=-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        base = getattr(self, f'base_anchors_{level}')
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

    # ------------------------------------------------------------------ decoding
    def _decode(self, level: int, priors: Tensor, reg: Tensor, max_xy: Tensor) -> Tensor:
        """Boxes ``[B, k, 4]`` of the kept candidates, by the head's own decode."""
        head = self.model.bbox_head
        boxes = self.exporter.decode(
            head,
            self.bbox_coder,
            priors.reshape(-1, priors.shape[-1]),
            reg.reshape(-1, reg.shape[-1]),
            self.level_strides[level],
        )
        return self._clip(boxes.reshape(*reg.shape[:2], 4), max_xy)

    def _decode_anchor(self, anchors: Tensor, deltas: Tensor, max_xy: Tensor) -> Tensor:
        """Anchor deltas of a ``DeltaXYWHBBoxCoder`` head decoded and clipped (level 0)."""
        return self._decode(0, anchors, deltas, max_xy)

    def _nms(self, boxes: Tensor, scores: Tensor) -> Tuple[Tensor, Tensor]:
        """The graph's one NMS call, with the post-processing settings; scores are already
        thresholded (below-threshold ones are zero), so ``score_thr`` is 0."""
        return multiclass_nms(
            boxes,
            scores,
            iou_thr=self.post.iou_threshold,
            score_thr=0.0,
            max_detections=self.post.max_detections,
            flavour=self.nms_flavour,
        )

    def _clip(self, boxes: Tensor, max_xy: Tensor) -> Tensor:
        if not self.clip_border:
            return boxes
        return torch.max(torch.min(boxes, max_xy), torch.zeros_like(max_xy))

    def _topk(self, score: Tensor) -> Tuple[Tensor, Tensor]:
        """Top ``pre_top_k`` candidates of a level (by best class), any level size."""
        n = score.shape[1]
        if self.dynamic and torch.onnx.is_in_onnx_export():
            k = torch.clamp(torch._shape_as_tensor(score)[1], max=self.post.pre_top_k)
        else:
            k = min(int(n), self.post.pre_top_k)
        return score.topk(k, dim=1)

    # ------------------------------------------------------------------ forward
    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        x = img.float()
        if self.bgr_to_rgb:
            x = x[:, [2, 1, 0], ...]
        if self.normalize:
            x = (x - self.mean) / self.std
        if self.fp16:
            x = x.half()
        h, w = img.shape[-2], img.shape[-1]
        if self.dynamic and torch.onnx.is_in_onnx_export():
            hw = torch._shape_as_tensor(img)[2:].float()
            max_xy = torch.stack([hw[1], hw[0], hw[1], hw[0]])
        else:
            max_xy = img.new_tensor([w, h, w, h], dtype=torch.float32)
        if self.two_stage is not None:
            feats = tuple(f.float() for f in self.model.extract_feat(x))
            boxes, scores = self.two_stage(feats, lambda b: self._clip(b, max_xy))
            scores = torch.where(
                scores > self.post.score_threshold, scores, torch.zeros_like(scores)
            )
            dets, labels = self._nms(boxes, scores)
            if not self.with_masks:
                return dets, labels
            return dets, labels, self.two_stage.masks(feats, dets[..., :4], labels)
        exp = self.exporter
        with exp.tracing(self.model.bbox_head):
            outs = self.model.bbox_head(self.model.extract_feat(x))
        bsz = img.shape[0]
        thr = self.post.score_threshold
        all_boxes, all_scores = [], []
        for level in range(len(outs[0])):
            cls = outs[0][level].float()
            reg = outs[1][level].float()
            priors = self._priors(level, cls)
            scores = cls.permute(0, 2, 3, 1).reshape(bsz, -1, self.num_classes)
            if exp.sigmoid:
                scores = scores.sigmoid()
            enc = reg.shape[1] // self.num_base_priors[level]  # per-prior regression size
            reg = reg.permute(0, 2, 3, 1).reshape(bsz, -1, enc)
            factor = None
            if exp.score_factor:
                factor = outs[2][level].float().permute(0, 2, 3, 1).reshape(bsz, -1).sigmoid()
                if exp.factor_in_threshold:  # YOLOX ranks and thresholds the product
                    scores = scores * factor.unsqueeze(-1)
                    factor = None
            if exp.pre_top_k:
                best, idx = self._topk(scores.max(dim=-1)[0])
                scores = torch.gather(scores, 1, idx.unsqueeze(-1).expand(-1, -1, self.num_classes))
                reg = torch.gather(reg, 1, idx.unsqueeze(-1).expand(-1, -1, reg.shape[-1]))
                priors = priors[idx]  # [B, k, P]
                if factor is not None:
                    factor = torch.gather(factor, 1, idx)
            else:
                priors = priors.unsqueeze(0).expand(bsz, -1, -1)
            boxes = self._decode(level, priors, reg, max_xy)
            if exp.best_class_only:  # one label per prior, as YOLOX's predict keeps
                best = scores.max(dim=-1, keepdim=True)[0]
                scores = torch.where(scores >= best, scores, torch.zeros_like(scores))
            # mmdet thresholds the class score, then ranks/NMSes score * factor
            final = torch.where(scores > thr, scores, torch.zeros_like(scores))
            if factor is not None:
                final = final * factor.unsqueeze(-1)
            if self.post.min_bbox_size >= 0:
                wh = boxes[..., 2:] - boxes[..., :2]
                ok = (wh > self.post.min_bbox_size).all(dim=-1, keepdim=True)
                final = final * ok.to(final.dtype)
            all_boxes.append(boxes)
            all_scores.append(final)
        boxes = torch.cat(all_boxes, dim=1)
        scores = torch.cat(all_scores, dim=1)
        return self._nms(boxes, scores)


def make_wrapper(model: nn.Module, deploy_cfg: DeployConfig) -> End2EndDetector:
    """Validate shapes against the network and build the export wrapper for ``deploy_cfg``."""
    head_kind(model)  # the clear error for a detector without an export path, first
    stride = network_stride(model)
    check_shape(deploy_cfg.input_shape, stride)
    if deploy_cfg.dynamic:
        prof = deploy_cfg.profile(stride)
        check_shape(prof['min'][2:], stride, 'min_shape')
        check_shape(prof['max'][2:], stride, 'max_shape')
    if hasattr(model, 'roi_head'):  # two-stage: the R-CNN stage's score/NMS/max settings
        test_cfg = model.roi_head.test_cfg
    else:
        test_cfg = getattr(model.bbox_head, 'test_cfg', None)
    post = deploy_cfg.post_processing.resolved(test_cfg)
    return End2EndDetector(
        model,
        post,
        nms_flavour='efficient' if deploy_cfg.backend == 'tensorrt' else 'onnx',
        input_shape=deploy_cfg.input_shape,
        dynamic=deploy_cfg.dynamic,
        normalize=deploy_cfg.normalize,
        fp16=deploy_cfg.precision == 'fp16',
        masks=deploy_cfg.masks,
    ).eval()
