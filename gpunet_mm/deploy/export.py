"""End-to-end ONNX export of mmdet single-stage detectors (backbone to NMS in one graph).

Why our own exporter rather than mmdeploy: mmdeploy 1.3.1 installs only without its pinned
dependencies, fails on torch >= 2.6's default exporter, and its TensorRT side targets
TensorRT 8. What a latency search needs is small: one wrapper module that runs the
detector's own backbone/neck/head, decodes boxes with plain torch ops, and ends in a
backend-native NMS (see :mod:`.nms`). It is traced with the TorchScript exporter
(``dynamo=False``), because the NMS operators are emitted by ``autograd.Function.symbolic``.

Graph: ``input [B, 3, H, W]`` (0-255, channel order of the model's pipeline, BGR for mmcv
loaders) -> optional BGR->RGB + mean/std -> backbone/neck/head (fp16 inside when asked) ->
per level: sigmoid scores, pre-top-k by best class, box decoding (anchors/points baked in as
constants for static shapes, generated from the feature shape for dynamic ones) -> class-
aware NMS -> ``dets [B, N, 5]`` (x1, y1, x2, y2, score; input-pixel coordinates, i.e.
``predict(rescale=False)``) and ``labels [B, N]`` (int64, -1 where empty).
"""

from __future__ import annotations

import json
import math
import os
import os.path as osp
import time
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from .config import DeployConfig, PostProcessing
from .nms import multiclass_nms

SUPPORTED_HEADS = (
    'RetinaHead / AnchorHead (sigmoid classification, DeltaXYWHBBoxCoder)',
    'FCOSHead (points, distance coder, centerness)',
)


class UnsupportedModelError(ValueError):
    """The detector (or one of its modules) has no export path here."""


class ShapeError(ValueError):
    """The input shape does not fit the network (stride) or the deploy profile."""


# --------------------------------------------------------------------------- model loading
def build_detector(
    config: Union[str, Any],
    checkpoint: Optional[str] = None,
    cfg_options: Optional[Dict[str, Any]] = None,
    device: str = 'cpu',
) -> nn.Module:
    """An mmdet detector in eval mode from a config path/Config (+ optional checkpoint)."""
    from mmengine.config import Config

    from ..apis.runner import build_model

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if isinstance(config, str) and not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model_cfg = cfg.model if 'model' in cfg else cfg
    model = build_model(model_cfg, 'mmdet')
    if checkpoint:
        from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

        from ..apis.checkpoint import check_checkpoint

        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
        # a checkpoint of another tier would otherwise load with warnings only, and the
        # export (and its own parity check) would pass on random weights
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        check_checkpoint(model, ckpt, source=f'checkpoint {checkpoint}')
        _load_checkpoint_to_model(model, ckpt, logger='silent')
    elif hasattr(model, 'init_weights'):
        import logging

        from mmengine.logging import MMLogger

        # init_weights logs every parameter at INFO: hundreds of lines per export
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    return model.to(device).eval()


def head_kind(model: nn.Module) -> str:
    """``'anchor'`` or ``'point'``; raises :class:`UnsupportedModelError` naming the module."""
    from mmdet.models.dense_heads import AnchorHead, FCOSHead, RetinaHead
    from mmdet.models.detectors import SingleStageDetector
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    if not isinstance(model, SingleStageDetector):
        raise UnsupportedModelError(
            f'detector {type(model).__name__} is not supported for end-to-end export; '
            'supported: single-stage detectors (RetinaNet, FCOS, ...) with a head among: '
            + '; '.join(SUPPORTED_HEADS)
        )
    head = model.bbox_head
    name = type(head).__name__
    if type(head) is FCOSHead:
        return 'point'
    if type(head) in (RetinaHead, AnchorHead):
        if not head.use_sigmoid_cls:
            raise UnsupportedModelError(
                f'model.bbox_head ({name}) uses softmax classification; the exporter supports '
                'sigmoid (use_sigmoid=True in loss_cls)'
            )
        if not isinstance(head.bbox_coder, DeltaXYWHBBoxCoder):
            raise UnsupportedModelError(
                f'model.bbox_head.bbox_coder ({type(head.bbox_coder).__name__}) is not '
                'supported; supported: DeltaXYWHBBoxCoder'
            )
        return 'anchor'
    raise UnsupportedModelError(
        f'model.bbox_head ({name}) is not supported for end-to-end export; supported: '
        + '; '.join(SUPPORTED_HEADS)
    )


def network_stride(model: nn.Module) -> int:
    """The stride input sizes must be a multiple of (deepest backbone level, pad divisor)."""
    strides = [1]
    out_strides = getattr(getattr(model, 'backbone', None), 'out_strides', None)
    if out_strides:
        strides.append(max(out_strides))
    pre = getattr(model, 'data_preprocessor', None)
    strides.append(int(getattr(pre, 'pad_size_divisor', 1) or 1))
    return max(strides) if len(strides) > 1 else 32


def check_shape(shape: Tuple[int, int], stride: int, what: str = 'input shape') -> None:
    h, w = shape
    bad = [(n, v) for n, v in (('height', h), ('width', w)) if v % stride]
    if bad:
        detail = ', '.join(f'{n} {v}' for n, v in bad)
        sug = tuple(int(math.ceil(v / stride) * stride) for v in shape)
        raise ShapeError(
            f'{what} {tuple(shape)}: {detail} not divisible by the network stride {stride} '
            f'(deepest backbone level / data_preprocessor.pad_size_divisor); use a multiple '
            f'of {stride}, e.g. {sug}'
        )


# --------------------------------------------------------------------------- the wrapper
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
            self.coder_means = [float(v) for v in coder.means]
            self.coder_stds = [float(v) for v in coder.stds]
            self.add_ctr_clamp = bool(coder.add_ctr_clamp)
            self.ctr_clamp = float(coder.ctr_clamp)
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
        means = deltas.new_tensor(self.coder_means)
        stds = deltas.new_tensor(self.coder_stds)
        d = deltas * stds + means
        pxy = (anchors[..., :2] + anchors[..., 2:]) * 0.5
        pwh = anchors[..., 2:] - anchors[..., :2]
        dxy_wh = pwh * d[..., :2]
        max_ratio = abs(math.log(16 / 1000))
        dwh = d[..., 2:]
        if self.add_ctr_clamp:
            dxy_wh = dxy_wh.clamp(min=-self.ctr_clamp, max=self.ctr_clamp)
            dwh = dwh.clamp(max=max_ratio)
        else:
            dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        return self._clip(boxes, max_xy)

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


def arch_hash_of(model: nn.Module) -> Optional[str]:
    arch = getattr(getattr(model, 'backbone', None), 'arch', None)
    return arch.structural_hash() if hasattr(arch, 'structural_hash') else None


def _unshare_initializers(proto) -> None:
    """Give every consumer its own copy of a shared initializer.

    The exporter deduplicates equal constants (e.g. GroupNorm weights that are all ones), so
    one fp32 tensor may feed a converted and a blocked node; the converter then leaves it
    fp32 and the half node gets mixed input types. Copies keep each side consistent.
    """
    import onnx

    inits = {t.name: t for t in proto.graph.initializer}
    seen: Dict[str, int] = {}
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name not in inits:
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f'{name}__{seen[name]}'
                proto.graph.initializer.append(copy)
                node.input[i] = copy.name


def _to_fp16(proto):
    """Half-precision network, fp32 everywhere else (I/O, normalisation, decoding, NMS).

    The TorchScript exporter names nodes by module scope, so the detector's own layers are
    the nodes under ``/backbone/``, ``/neck/`` and ``/bbox_head/``; the rest is blocked from
    conversion and Casts are inserted at the boundaries. TensorRT 11 builds a strongly typed
    FP16 engine from this graph.
    """
    try:
        from onnxconverter_common import float16
    except ImportError as e:
        raise ImportError(
            'fp16 export needs onnxconverter-common: pip install onnxconverter-common'
        ) from e

    _unshare_initializers(proto)
    scopes = ('/backbone/', '/neck/', '/bbox_head/')
    block = [n.name for n in proto.graph.node if not n.name.startswith(scopes)]
    out_types = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        half = float16.convert_float_to_float16(
            proto, keep_io_types=True, node_block_list=block, disable_shape_infer=False
        )
    _restore_output_types(half, out_types)
    return half


def _restore_output_types(proto, out_types: Dict[str, int]) -> None:
    """Undo the converter's fp16 Cast in front of outputs whose producer stayed fp32.

    onnxconverter-common (1.16) appends ``Cast(to=FLOAT16)`` before every float graph output
    even when ``keep_io_types=True`` and the producing node is in the block list, so ``dets``
    would come out as half. The outputs are produced by blocked (fp32) decoding/NMS nodes,
    so the Cast is retargeted to the original type and the declared output type restored.
    """
    producers = {o: n for n in proto.graph.node for o in n.output}
    for out in proto.graph.output:
        want = out_types.get(out.name)
        if want is None or out.type.tensor_type.elem_type == want:
            continue
        node = producers.get(out.name)
        if node is None or node.op_type != 'Cast':
            raise RuntimeError(
                f'fp16 conversion changed output {out.name!r} to type '
                f'{out.type.tensor_type.elem_type} and no Cast can be retargeted'
            )
        for attr in node.attribute:
            if attr.name == 'to':
                attr.i = want
        out.type.tensor_type.elem_type = want


def export_onnx(
    model: nn.Module,
    deploy_cfg: Union[DeployConfig, Mapping[str, Any], str, None],
    out_file: str,
) -> Dict[str, Any]:
    """Export ``model`` end to end to ``out_file``; returns a JSON-able summary.

    The summary holds the resolved deploy config, the input/output names and shapes, the
    export time, the file size and the backbone's architecture hash (the latency-cache key).
    """
    import onnx

    cfg = DeployConfig.from_any(deploy_cfg)
    # fp16 is traced in fp32 and converted afterwards (see _to_fp16): tracing a half model
    # on a CPU takes minutes, because PyTorch's CPU half convolutions are very slow
    wrapper = make_wrapper(model, DeployConfig.from_any({**cfg.to_dict(), 'precision': 'fp32'}))
    h, w = cfg.input_shape
    dummy = torch.rand(cfg.batch_size, 3, h, w) * 255
    dynamic_axes = None
    if cfg.dynamic:
        dynamic_axes = {
            'input': {0: 'batch', 2: 'height', 3: 'width'},
            'dets': {0: 'batch'},
            'labels': {0: 'batch'},
        }
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            wrapper,
            (dummy,),
            out_file,
            dynamo=False,
            opset_version=cfg.opset,
            input_names=['input'],
            output_names=['dets', 'labels'],
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            custom_opsets={'TRT': 1} if cfg.backend == 'tensorrt' else None,
        )
    proto = onnx.load(out_file)
    if cfg.precision == 'fp16':
        proto = _to_fp16(proto)
    post = wrapper.post
    meta = {
        'gpunet_mm.deploy_cfg': json.dumps(cfg.to_dict()),
        'gpunet_mm.post_processing': json.dumps(post.__dict__),
        'gpunet_mm.arch_hash': arch_hash_of(model) or '',
        'gpunet_mm.profile': json.dumps(cfg.profile(network_stride(model))),
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, out_file)
    seconds = time.perf_counter() - t0
    ops: Dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return dict(
        onnx=osp.abspath(out_file),
        export_seconds=round(seconds, 3),
        file_mb=round(osp.getsize(out_file) / 2**20, 3),
        deploy_cfg=cfg.to_dict(),
        post_processing=dict(post.__dict__),
        head=wrapper.kind,
        nms='EfficientNMS_TRT' if wrapper.nms_flavour == 'efficient' else 'NonMaxSuppression',
        stride=network_stride(model),
        profile=cfg.profile(network_stride(model)),
        inputs={
            'input': [
                'batch' if cfg.dynamic else cfg.batch_size,
                3,
                'height' if cfg.dynamic else h,
                'width' if cfg.dynamic else w,
            ]
        },
        outputs={
            'dets': ['batch' if cfg.dynamic else cfg.batch_size, post.max_detections, 5],
            'labels': ['batch' if cfg.dynamic else cfg.batch_size, post.max_detections],
        },
        arch_hash=arch_hash_of(model),
        num_nodes=len(proto.graph.node),
        op_counts=dict(sorted(ops.items())),
        torch=torch.__version__,
        onnx_version=onnx.__version__,
    )
