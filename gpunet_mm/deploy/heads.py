"""Head exporters: how the end-to-end graph turns one dense head's outputs into boxes.

mmdet's dense heads share one post-processing skeleton (``BaseDenseHead.predict_by_feat``):
per level, activate the class scores, keep the ``nms_pre`` best, decode the kept boxes
against their priors, multiply by a score factor where the head has one (centerness,
objectness), then NMS. The heads differ only in a few places, which a :class:`HeadExporter`
names: the score activation, the optional score factor and where the threshold applies,
and the decode call. Each decode calls the head's own code (its ``bbox_coder``, GFL's
``integral`` and ``anchor_center``, YOLOX's ``_bbox_decode``) with the head's own settings,
as mmdeploy's rewriters of ``predict_by_feat`` do, so export and ``predict`` share one
implementation. Adding a head is one :func:`register_head_exporter` call.

Heads whose ``forward`` uses an operator ONNX Runtime lacks get a traceable twin of that
one method while they are traced (:attr:`HeadExporter.rewrites`): TOOD's deformable
sampling becomes ``grid_sample`` (the same bilinear sampling with zero padding).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class UnsupportedModelError(ValueError):
    """The detector (or one of its modules) has no export path here."""


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


# ----------------------------------------------------------------------------- decoders
# (head, coder, priors [N, P], reg [N, D], stride (sw, sh)) -> boxes [N, 4] (x1, y1, x2, y2),
# no border clip (the image size is a graph tensor for dynamic shapes: the wrapper clips).
# ``coder`` is the head's ``bbox_coder`` as it was when the wrapper was built.
Decoder = Callable[[nn.Module, object, Tensor, Tensor, Tuple[float, float]], Tensor]


def decode_deltas(head: nn.Module, c: object, priors: Tensor, reg: Tensor, stride) -> Tensor:
    """``DeltaXYWHBBoxCoder``: mmdet's ``delta2bbox`` with the coder's settings."""
    from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox

    return delta2bbox(
        priors,
        reg,
        means=tuple(float(v) for v in c.means),
        stds=tuple(float(v) for v in c.stds),
        max_shape=None,
        wh_ratio_clip=coder_wh_ratio_clip(c),
        clip_border=False,
        add_ctr_clamp=bool(c.add_ctr_clamp),
        ctr_clamp=float(c.ctr_clamp),
    )


def decode_distances(head: nn.Module, coder: object, priors: Tensor, reg: Tensor, stride) -> Tensor:
    """``DistancePointBBoxCoder`` on points (FCOS, RTMDet: distances already in pixels)."""
    return coder.decode(priors, reg, max_shape=None)


def decode_gfl(head: nn.Module, coder: object, priors: Tensor, reg: Tensor, stride) -> Tensor:
    """GFL: the head's ``integral`` of the distance distribution, times the stride, from
    the anchor centres (``GFLHead._predict_by_feat_single``)."""
    dist = head.integral(reg) * float(stride[0])
    return coder.decode(head.anchor_center(priors), dist, max_shape=None)


def decode_scaled_boxes(
    head: nn.Module, coder: object, priors: Tensor, reg: Tensor, stride
) -> Tensor:
    """TOOD: ``forward`` already returns boxes in stride units."""
    return reg * float(stride[0])


def decode_yolox(head: nn.Module, coder: object, priors: Tensor, reg: Tensor, stride) -> Tensor:
    """YOLOX: the head's ``_bbox_decode`` (centre offsets and log sizes times the stride)."""
    return head._bbox_decode(priors, reg)


# ----------------------------------------------------------------------------- checks
def _check_sigmoid(head: nn.Module) -> None:
    if not getattr(head, 'use_sigmoid_cls', True):
        raise UnsupportedModelError(
            f'model.bbox_head ({type(head).__name__}) uses softmax classification; the '
            'exporter supports sigmoid (use_sigmoid=True in loss_cls)'
        )


def _check_coder(*allowed: str) -> Callable[[nn.Module], None]:
    def check(head: nn.Module) -> None:
        _check_sigmoid(head)
        name = type(head.bbox_coder).__name__
        if name not in allowed:
            raise UnsupportedModelError(
                f'model.bbox_head.bbox_coder ({name}) is not supported for '
                f'{type(head).__name__}; supported: {", ".join(allowed)}'
            )

    return check


# ----------------------------------------------------------------------------- rewrites
def grid_sample_deform_sampling(feat: Tensor, offset: Tensor) -> Tensor:
    """TOOD's ``deform_sampling`` (a 1x1 deformable conv with one group per channel, all
    weights one) as ``grid_sample``: channel ``k`` at ``(i, j)`` is read bilinearly at
    ``(i + offset[2k], j + offset[2k+1])`` with zeros outside, as mmcv's kernel does."""
    b, c, h, w = feat.shape
    off = offset.reshape(b, c, 2, h, w)
    ys = torch.arange(h, dtype=feat.dtype, device=feat.device).reshape(1, 1, h, 1)
    xs = torch.arange(w, dtype=feat.dtype, device=feat.device).reshape(1, 1, 1, w)
    y = (ys + off[:, :, 0]) * (2.0 / max(h - 1, 1)) - 1.0
    x = (xs + off[:, :, 1]) * (2.0 / max(w - 1, 1)) - 1.0
    grid = torch.stack([x, y], dim=-1).reshape(b * c, h, w, 2)
    out = F.grid_sample(
        feat.reshape(b * c, 1, h, w),
        grid,
        mode='bilinear',
        padding_mode='zeros',
        align_corners=True,
    )
    return out.reshape(b, c, h, w)


@contextlib.contextmanager
def _patched(head: nn.Module, name: str, fn: Callable) -> Iterator[None]:
    """``head.<name>`` replaced by ``fn`` on this instance only, restored afterwards."""
    had = name in vars(head)
    old = vars(head).get(name)
    setattr(head, name, fn)
    try:
        yield
    finally:
        if had:
            setattr(head, name, old)
        else:
            delattr(head, name)


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class HeadExporter:
    """What the end-to-end graph needs to know about one family of dense heads.

    Attributes:
        name: how the supported list names it.
        decode: :data:`Decoder` of the kept candidates.
        sigmoid: apply a sigmoid to the class outputs (False: ``forward`` returns
            probabilities, as TOOD's aligned scores are).
        score_factor: ``forward``'s third output is a per-prior logit (centerness,
            objectness) whose sigmoid multiplies the class scores.
        factor_in_threshold: the score threshold applies to the product (YOLOX) rather
            than to the class score alone (FCOS, ATSS).
        best_class_only: one label per prior, its best class (YOLOX).
        pre_top_k: keep ``nms_pre`` candidates per level (YOLOX's predict keeps all).
        priors_with_stride: point priors carry their stride (``[x, y, sw, sh]``, YOLOX).
        clip: clip boxes to the image: ``'coder'`` (the coder's ``clip_border``) or never.
        dynamic: exports with dynamic shapes are exact (False: ``forward`` bakes the
            feature-map sizes in, as TOOD's in-forward anchors do).
        check: raises :class:`UnsupportedModelError` for settings the decode cannot follow.
        rewrites: head methods replaced by traceable twins while tracing.
    """

    name: str
    decode: Decoder
    sigmoid: bool = True
    score_factor: bool = False
    factor_in_threshold: bool = False
    best_class_only: bool = False
    pre_top_k: bool = True
    priors_with_stride: bool = False
    clip: str = 'coder'
    dynamic: bool = True
    check: Optional[Callable[[nn.Module], None]] = None
    rewrites: Mapping[str, Callable] = field(default_factory=dict)

    def clip_border(self, head: nn.Module) -> bool:
        coder = getattr(head, 'bbox_coder', None)
        return self.clip == 'coder' and bool(getattr(coder, 'clip_border', True))

    @contextlib.contextmanager
    def tracing(self, head: nn.Module) -> Iterator[None]:
        """The head with :attr:`rewrites` in place (nothing else changes)."""
        with contextlib.ExitStack() as stack:
            for name, fn in self.rewrites.items():
                stack.enter_context(_patched(head, name, fn))
            yield


#: mmdet head class name -> its exporter (the exact class: a subclass may change the math)
HEAD_EXPORTERS: Dict[str, HeadExporter] = {}


def register_head_exporter(exporter: HeadExporter, *heads: str) -> HeadExporter:
    """Register ``exporter`` for the mmdet head classes named ``heads``."""
    for name in heads:
        HEAD_EXPORTERS[name] = exporter
    return exporter


register_head_exporter(
    HeadExporter('anchors + DeltaXYWHBBoxCoder', decode_deltas,
                 check=_check_coder('DeltaXYWHBBoxCoder')),
    'RetinaHead', 'AnchorHead',
)  # fmt: skip
register_head_exporter(
    HeadExporter('anchors + DeltaXYWHBBoxCoder, centerness', decode_deltas, score_factor=True,
                 check=_check_coder('DeltaXYWHBBoxCoder')),
    'ATSSHead',
)  # fmt: skip
register_head_exporter(
    HeadExporter('points + distances, centerness', decode_distances, score_factor=True,
                 check=_check_coder('DistancePointBBoxCoder')),
    'FCOSHead',
)  # fmt: skip
register_head_exporter(
    HeadExporter('anchor centres + integral of distance distributions', decode_gfl,
                 check=_check_coder('DistancePointBBoxCoder')),
    'GFLHead',
)  # fmt: skip
register_head_exporter(
    HeadExporter('task-aligned boxes (deformable sampling as grid_sample)',
                 decode_scaled_boxes, sigmoid=False, clip='never', dynamic=False,
                 rewrites={'deform_sampling': grid_sample_deform_sampling}),
    'TOODHead',
)  # fmt: skip
register_head_exporter(
    HeadExporter('points + distances', decode_distances,
                 check=_check_coder('DistancePointBBoxCoder')),
    'RTMDetHead', 'RTMDetSepBNHead',
)  # fmt: skip
register_head_exporter(
    HeadExporter('points with strides, objectness, best class', decode_yolox,
                 score_factor=True, factor_in_threshold=True, best_class_only=True,
                 pre_top_k=False, priors_with_stride=True, clip='never',
                 check=_check_sigmoid),
    'YOLOXHead',
)  # fmt: skip


def supported_heads() -> str:
    """The supported heads, for error messages (``Head (how); ...``)."""
    groups: Dict[str, list] = {}
    for head, exp in HEAD_EXPORTERS.items():
        groups.setdefault(exp.name, []).append(head)
    return '; '.join(f'{" / ".join(h)} ({n})' for n, h in groups.items())


def _mmdet_class(name: str) -> Optional[type]:
    from mmdet.registry import MODELS

    from ..registry import register_all_modules

    register_all_modules()
    return MODELS.get(name)


def exporter_for_head(head: nn.Module) -> HeadExporter:
    """The exporter of ``head`` (exact mmdet class), its settings checked."""
    name = type(head).__name__
    exp = HEAD_EXPORTERS.get(name)
    if exp is None or _mmdet_class(name) is not type(head):
        raise UnsupportedModelError(
            f'model.bbox_head ({name}) is not supported for end-to-end export; supported: '
            + supported_heads()
        )
    if exp.check is not None:
        exp.check(head)
    return exp


#: the two-stage detectors :mod:`.two_stage` exports (named in errors)
SUPPORTED_TWO_STAGE = (
    'FasterRCNN / MaskRCNN (boxes; RPNHead + StandardRoIHead with '
    'SingleRoIExtractor(RoIAlign) and a BBoxHead with DeltaXYWHBBoxCoder)'
)
TWO_STAGE_DETECTORS = ('FasterRCNN', 'MaskRCNN')


def _unsupported_detector(name: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f'detector {name} is not supported for end-to-end export; supported: '
        + SUPPORTED_TWO_STAGE
        + ', and single-stage detectors (RetinaNet, FCOS, ATSS, GFL, TOOD, RTMDet, YOLOX, '
        '...) with a head among: ' + supported_heads()
    )


def exporter_for(model: nn.Module) -> HeadExporter:
    """The exporter of a built detector; :class:`UnsupportedModelError` names what fails."""
    from mmdet.models.detectors import SingleStageDetector

    if not isinstance(model, SingleStageDetector):
        raise _unsupported_detector(type(model).__name__)
    return exporter_for_head(model.bbox_head)


def check_model_cfg(model_cfg: Mapping[str, object]) -> None:
    """The config-level check (nothing built): detector and head classes are exportable.

    The search runs it before anything trains, so a detector without an export path fails
    at once instead of after its first training.
    """
    from mmdet.models.detectors import SingleStageDetector

    det_type = str(model_cfg.get('type', ''))
    det_cls = _mmdet_class(det_type)
    if det_cls is not None and det_cls.__name__ in TWO_STAGE_DETECTORS:
        for key, allowed in (('rpn_head', 'RPNHead'), ('roi_head', 'StandardRoIHead')):
            sub = model_cfg.get(key)
            got = str(sub.get('type', '')) if isinstance(sub, Mapping) else None
            if got is None or got.split('.')[-1] != allowed:
                raise UnsupportedModelError(
                    f'model.{key} ({got}) of {det_type} is not supported for end-to-end '
                    f'export; supported: {SUPPORTED_TWO_STAGE}'
                )
        return
    if det_cls is None or not issubclass(det_cls, SingleStageDetector):
        raise _unsupported_detector(det_type)
    head_cfg = model_cfg.get('bbox_head')
    head_type = str(head_cfg.get('type', '')) if isinstance(head_cfg, Mapping) else ''
    head_name = head_type.split('.')[-1]
    if head_name not in HEAD_EXPORTERS or _mmdet_class(head_type) is None:
        raise UnsupportedModelError(
            f'model.bbox_head ({head_type or None}) is not supported for end-to-end export; '
            'supported: ' + supported_heads()
        )
