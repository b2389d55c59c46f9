"""Deploy configuration: what to export and how to post-process, in one small object.

Modelled on mmdeploy's deploy configs (backend, precision, static/dynamic input shape, batch
size, post-processing) but flat and validated up front, so that a typo fails at the start of
an export that may take minutes, with the bad value and the allowed ones in the message.
"""

from __future__ import annotations

import json
import os.path as osp
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

EXPORT_BACKENDS = ('onnxruntime', 'tensorrt')
PRECISIONS = ('fp32', 'fp16', 'int8')


def _err(what: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f'{what}: got {value!r}; allowed: {allowed}')


def as_hw(
    value: Any, what: str, square: bool = True, none: Optional[str] = None
) -> Tuple[int, int]:
    """``value`` as an ``(H, W)`` of positive integers, or an error naming ``what``.

    Every input shape of the deploy tools goes through here, so they accept the same
    things: two positive integers (numpy's too; not bools), and with ``square`` one integer
    ``n`` for ``(n, n)``. ``none`` says what None means where the caller allows it (the
    caller handles None; this only puts it into the message).
    """
    hw = value
    if square and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        hw = (value, value)
    if (
        not isinstance(hw, (list, tuple))
        or len(hw) != 2
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in hw
        )
    ):
        allowed = ['(H, W) with positive integers']
        if square:
            allowed.append('one integer for a square')
        if none:
            allowed.append(f'None for {none}')
        text = ', '.join(allowed[:-1]) + ', or ' + allowed[-1] if len(allowed) > 1 else allowed[0]
        raise _err(what, value, text)
    return int(hw[0]), int(hw[1])


@dataclass
class PostProcessing:
    """Detection post-processing baked into the graph.

    ``None`` means "take it from the model's ``test_cfg``" (``score_thr``, ``nms.iou_threshold``,
    ``max_per_img``, ``nms_pre``), so an export reproduces ``model.predict`` by default.
    """

    score_threshold: Optional[float] = None
    iou_threshold: Optional[float] = None
    max_detections: Optional[int] = None
    pre_top_k: Optional[int] = None
    min_bbox_size: Optional[float] = None

    def resolved(self, test_cfg: Optional[Mapping[str, Any]]) -> PostProcessing:
        """Fill the ``None`` fields from an mmdet ``test_cfg`` (mmdet's own defaults else)."""
        t = dict(test_cfg or {})
        nms = dict(t.get('nms') or {})
        out = PostProcessing(
            score_threshold=self.score_threshold
            if self.score_threshold is not None
            else float(t.get('score_thr', 0.05)),
            iou_threshold=self.iou_threshold
            if self.iou_threshold is not None
            else float(nms.get('iou_threshold', 0.5)),
            max_detections=self.max_detections
            if self.max_detections is not None
            else int(t.get('max_per_img', 100)),
            pre_top_k=self.pre_top_k if self.pre_top_k is not None else int(t.get('nms_pre', 1000)),
            min_bbox_size=self.min_bbox_size
            if self.min_bbox_size is not None
            else float(t.get('min_bbox_size', -1)),
        )
        out.validate()
        return out

    def validate(self) -> None:
        if self.score_threshold is not None and not 0.0 <= self.score_threshold < 1.0:
            raise _err('post_processing.score_threshold', self.score_threshold, '[0, 1)')
        if self.iou_threshold is not None and not 0.0 < self.iou_threshold <= 1.0:
            raise _err('post_processing.iou_threshold', self.iou_threshold, '(0, 1]')
        if self.max_detections is not None and self.max_detections < 1:
            raise _err('post_processing.max_detections', self.max_detections, 'integers >= 1')
        if self.pre_top_k is not None and self.pre_top_k < 1:
            raise _err('post_processing.pre_top_k', self.pre_top_k, 'integers >= 1')


@dataclass
class DeployConfig:
    """What an export produces.

    Attributes:
        backend: ``'onnxruntime'`` (standard ONNX ``NonMaxSuppression``) or ``'tensorrt'``
            (TensorRT's built-in ``EfficientNMS_TRT`` plugin; no plugin library to compile).
        precision: ``'fp32'``, ``'fp16'`` (the network runs in half precision inside the graph
            with fp32 inputs/outputs and fp32 box decoding/NMS: what TensorRT 11's strongly
            typed networks need) or ``'int8'`` (TensorRT only, from an ONNX graph that already
            holds explicit Q/DQ nodes; this exporter does not insert them).
        input_shape: ``(H, W)`` of the exported input (the optimum of a dynamic profile).
        dynamic: batch, height and width become dynamic axes; anchors/points are then
            generated from the feature-map shapes inside the graph instead of baked in.
        batch_size: static batch (the profile's optimum when dynamic).
        min_shape, max_shape, max_batch_size: the TensorRT optimisation profile for dynamic
            exports (defaults: half and twice ``input_shape``, rounded to the stride; batch
            ``2 * batch_size``).
        normalize: put mean/std (and BGR->RGB) from the model's ``data_preprocessor`` into the
            graph, so the model takes raw 0-255 images as mmcv loads them (BGR).
        opset: ONNX opset.
        post_processing: see :class:`PostProcessing`.
        masks: Mask R-CNN: a third output ``masks`` (``[B, N, 28, 28]``: each detection's RoI
            mask, the mask head's sigmoid for its class, not pasted into the image); refused
            for a detector without a mask head. Latency is timed without it by default.
    """

    backend: str = 'onnxruntime'
    precision: str = 'fp32'
    input_shape: Tuple[int, int] = (320, 320)
    dynamic: bool = False
    batch_size: int = 1
    min_shape: Optional[Tuple[int, int]] = None
    max_shape: Optional[Tuple[int, int]] = None
    max_batch_size: Optional[int] = None
    normalize: bool = True
    opset: int = 17
    post_processing: PostProcessing = field(default_factory=PostProcessing)
    masks: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.post_processing, Mapping):
            self.post_processing = _pp_from_dict(self.post_processing)
        self.input_shape = as_hw(self.input_shape, 'input_shape')
        if self.min_shape is not None:
            self.min_shape = as_hw(self.min_shape, 'min_shape')
        if self.max_shape is not None:
            self.max_shape = as_hw(self.max_shape, 'max_shape')
        self.validate()

    def validate(self) -> None:
        if self.backend not in EXPORT_BACKENDS:
            raise _err('deploy backend', self.backend, ', '.join(EXPORT_BACKENDS) + ' (for export)')
        if self.precision not in PRECISIONS:
            raise _err('precision', self.precision, ', '.join(PRECISIONS))
        if self.precision == 'int8':
            raise _err(
                'precision',
                self.precision,
                "'fp32' or 'fp16' for export: INT8 needs explicit Q/DQ nodes (e.g. from "
                'NVIDIA ModelOpt); build such an ONNX with build_trt_engine(precision="int8")',
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise _err('batch_size', self.batch_size, 'integers >= 1')
        if self.max_batch_size is not None and self.max_batch_size < self.batch_size:
            raise _err('max_batch_size', self.max_batch_size, f'>= batch_size ({self.batch_size})')
        if not isinstance(self.opset, int) or not 11 <= self.opset <= 20:
            raise _err('opset', self.opset, '11..20')
        if not isinstance(self.masks, bool):
            raise _err('masks', self.masks, 'True or False (a bool)')
        self.post_processing.validate()

    # ----------------------------------------------------------------- derived
    def profile(self, stride: int) -> Dict[str, Tuple[int, int, int, int]]:
        """TensorRT min/opt/max input shapes ``(B, 3, H, W)`` (static: all three equal)."""
        h, w = self.input_shape
        opt = (self.batch_size, 3, h, w)
        if not self.dynamic:
            return dict(min=opt, opt=opt, max=opt)

        def rnd(v: int) -> int:
            return max(stride, (v // stride) * stride)

        mn = self.min_shape or (rnd(h // 2), rnd(w // 2))
        mx = self.max_shape or (rnd(h * 2), rnd(w * 2))
        mb = self.max_batch_size or 2 * self.batch_size
        return dict(min=(1, 3, *mn), opt=opt, max=(mb, 3, *mx))

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d['input_shape'] = list(self.input_shape)
        return d

    @classmethod
    def from_any(cls, cfg: Union[DeployConfig, Mapping[str, Any], str, None]) -> DeployConfig:
        """A DeployConfig, a dict, a ``.py``/``.json`` file, or None (all defaults)."""
        if cfg is None:
            return cls()
        if isinstance(cfg, DeployConfig):
            return cfg
        if isinstance(cfg, str):
            if not osp.isfile(cfg):
                raise FileNotFoundError(f'deploy config file not found: {cfg}')
            if cfg.endswith('.json'):
                with open(cfg) as f:
                    cfg = json.load(f)
            else:
                from mmengine.config import Config

                cfg = Config.fromfile(cfg).to_dict()
                cfg = cfg.get('deploy_cfg', cfg)
        if not isinstance(cfg, Mapping):
            raise _err('deploy config', type(cfg).__name__, 'a DeployConfig, dict or file path')
        allowed = {f.name for f in fields(cls)}
        unknown = set(cfg) - allowed
        if unknown:
            raise _err('deploy config keys', sorted(unknown), ', '.join(sorted(allowed)))
        return cls(**dict(cfg))


def _pp_from_dict(d: Mapping[str, Any]) -> PostProcessing:
    allowed = {f.name for f in fields(PostProcessing)}
    unknown = set(d) - allowed
    if unknown:
        raise _err('post_processing keys', sorted(unknown), ', '.join(sorted(allowed)))
    return PostProcessing(**dict(d))
