"""The end-to-end wrapper: detector + box decoding + NMS as one traceable module.

Graph: ``input [B, 3, H, W]`` (0-255, channel order of the model's pipeline, BGR for mmcv
loaders) -> optional BGR->RGB + mean/std -> backbone/neck/head (fp16 inside when asked) ->
per level: sigmoid scores, pre-top-k by best class, box decoding (anchors/points baked in as
constants for static shapes, generated from the feature shape for dynamic ones) -> class-
aware NMS -> ``dets [B, N, 5]`` (x1, y1, x2, y2, score; input-pixel coordinates, i.e.
``predict(rescale=False)``) and ``labels [B, N]`` (int64, -1 where empty).

Anchor boxes are decoded by mmdet's own ``delta2bbox`` with the head's coder settings
(means, stds, ``wh_ratio_clip``, centre clamp), as mmdeploy's coder rewriter does; only the
border clip is done here, because the image size is a graph tensor for dynamic shapes.
"""

from __future__ import annotations

import inspect
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .config import DeployConfig, PostProcessing
from .loading import check_shape, head_kind, network_stride
from .nms import multiclass_nms


def coder_wh_ratio_clip(coder: object) -> float:
    """The ``wh_ratio_clip`` the coder decodes with in mmdet's own ``predict``.

    mmdet's heads call ``coder.decode(priors, deltas, max_shape=...)`` without it, so the
    value is the coder's ``decode`` default (16/1000 for ``DeltaXYWHBBoxCoder``), unless the
    coder instance carries its own ``wh_ratio_clip``.
    """
    if getattr(coder, 'wh_ratio_clip', None) is not None:
        return float(coder.wh_ratio_clip)
    default = inspect.signature(type(coder).decode).parameters['wh_ratio_clip'].default
    return float(default)


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
    ) -> None:
        super().__init__()
        self.kind = head_kind(model)
        self.model = model.half() if fp16 else model
        self.post = post
        self.nms_flavour = nms_flavour
        self.dynamic = dynamic
        self.fp16 = fp16
        self.normalize = normalize
        head = model.bbox_head
        self.num_classes = head.cls_out_channels
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
        gen = head.prior_generator
        self.level_strides = [tuple(float(v) for v in s) for s in gen.strides]
        if self.kind == 'anchor':
            for i, base in enumerate(gen.base_anchors):
                self.register_buffer(f'base_anchors_{i}', base.float().clone())
            coder = head.bbox_coder
            self.coder_cfg = dict(
                means=tuple(float(v) for v in coder.means),
                stds=tuple(float(v) for v in coder.stds),
                wh_ratio_clip=coder_wh_ratio_clip(coder),
                add_ctr_clamp=bool(coder.add_ctr_clamp),
                ctr_clamp=float(coder.ctr_clamp),
            )
            self.clip_border = bool(coder.clip_border)
        else:
            self.point_offset = float(gen.offset)
            self.clip_border = bool(getattr(head.bbox_coder, 'clip_border', True))
        self.static_priors: Optional[List[Tensor]] = None
        if not dynamic:
            sizes = self._featmap_sizes(input_shape)
            self.static_priors = [
                p.float() for p in gen.grid_priors(sizes, dtype=torch.float32, device='cpu')
            ]
            for i, p in enumerate(self.static_priors):
                self.register_buffer(f'static_priors_{i}', p)

    @torch.no_grad()
    def _featmap_sizes(self, shape: Tuple[int, int]) -> List[Tuple[int, int]]:
        p = next(self.model.parameters())
        x = torch.zeros((1, 3, *shape), dtype=p.dtype, device=p.device)
        outs = self.model.bbox_head(self.model.extract_feat(x))
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
            return torch.stack([xx, yy], dim=-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        base = getattr(self, f'base_anchors_{level}')
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

    # ------------------------------------------------------------------ decoding
    def _decode_anchor(self, anchors: Tensor, deltas: Tensor, max_xy: Tensor) -> Tensor:
        from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox

        # mmdet's single-image decode on [B * k, 4]; the border clip (a graph tensor for
        # dynamic shapes) is ours, as in mmdeploy's delta2bbox rewriter
        boxes = delta2bbox(
            anchors.reshape(-1, 4),
            deltas.reshape(-1, 4),
            max_shape=None,
            clip_border=False,
            **self.coder_cfg,
        )
        return self._clip(boxes.reshape(deltas.shape), max_xy)

    def _decode_point(self, points: Tensor, dist: Tensor, max_xy: Tensor) -> Tensor:
        boxes = torch.cat([points - dist[..., :2], points + dist[..., 2:]], dim=-1)
        return self._clip(boxes, max_xy)

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
    def forward(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        x = img.float()
        if self.bgr_to_rgb:
            x = x[:, [2, 1, 0], ...]
        if self.normalize:
            x = (x - self.mean) / self.std
        if self.fp16:
            x = x.half()
        outs = self.model.bbox_head(self.model.extract_feat(x))
        h, w = img.shape[-2], img.shape[-1]
        if self.dynamic and torch.onnx.is_in_onnx_export():
            hw = torch._shape_as_tensor(img)[2:].float()
            max_xy = torch.stack([hw[1], hw[0], hw[1], hw[0]])
        else:
            max_xy = img.new_tensor([w, h, w, h], dtype=torch.float32)
        bsz = img.shape[0]
        thr = self.post.score_threshold
        all_boxes, all_scores = [], []
        for level in range(len(outs[0])):
            cls = outs[0][level].float()
            reg = outs[1][level].float()
            priors = self._priors(level, cls)
            scores = cls.permute(0, 2, 3, 1).reshape(bsz, -1, self.num_classes).sigmoid()
            enc = 4
            reg = reg.permute(0, 2, 3, 1).reshape(bsz, -1, enc)
            best, idx = self._topk(scores.max(dim=-1)[0])
            scores = torch.gather(scores, 1, idx.unsqueeze(-1).expand(-1, -1, self.num_classes))
            reg = torch.gather(reg, 1, idx.unsqueeze(-1).expand(-1, -1, enc))
            priors = priors[idx]  # [B, k, 4 or 2]
            if self.kind == 'anchor':
                boxes = self._decode_anchor(priors, reg, max_xy)
                final = scores
            else:
                ctr = outs[2][level].float().permute(0, 2, 3, 1).reshape(bsz, -1).sigmoid()
                ctr = torch.gather(ctr, 1, idx)
                boxes = self._decode_point(priors, reg, max_xy)
                # mmdet thresholds the class score, then ranks/NMSes score * centerness
                final = torch.where(
                    scores > thr, scores * ctr.unsqueeze(-1), torch.zeros_like(scores)
                )
            if self.post.min_bbox_size >= 0:
                wh = boxes[..., 2:] - boxes[..., :2]
                ok = (wh > self.post.min_bbox_size).all(dim=-1, keepdim=True)
                final = final * ok.to(final.dtype)
            all_boxes.append(boxes)
            all_scores.append(final)
        boxes = torch.cat(all_boxes, dim=1)
        scores = torch.cat(all_scores, dim=1)
        return multiclass_nms(
            boxes,
            scores,
            iou_thr=self.post.iou_threshold,
            score_thr=thr if self.kind == 'anchor' else 0.0,
            max_detections=self.post.max_detections,
            flavour=self.nms_flavour,
        )


def make_wrapper(model: nn.Module, deploy_cfg: DeployConfig) -> End2EndDetector:
    """Validate shapes against the network and build the export wrapper for ``deploy_cfg``."""
    stride = network_stride(model)
    check_shape(deploy_cfg.input_shape, stride)
    if deploy_cfg.dynamic:
        prof = deploy_cfg.profile(stride)
        check_shape(prof['min'][2:], stride, 'min_shape')
        check_shape(prof['max'][2:], stride, 'max_shape')
    post = deploy_cfg.post_processing.resolved(getattr(model.bbox_head, 'test_cfg', None))
    return End2EndDetector(
        model,
        post,
        nms_flavour='efficient' if deploy_cfg.backend == 'tensorrt' else 'onnx',
        input_shape=deploy_cfg.input_shape,
        dynamic=deploy_cfg.dynamic,
        normalize=deploy_cfg.normalize,
        fp16=deploy_cfg.precision == 'fp16',
    ).eval()
