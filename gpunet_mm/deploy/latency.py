"""Measure a GPUNet architecture inside a detector, cheaply and through the cache.

The search asks "how fast is this backbone *as deployed in this detector*?" thousands of
times. :func:`detector_cfg_for_arch` drops an architecture into a detector template (the
neck's input channels follow the arch), :func:`measure_arch` exports the network part
(backbone + neck + head raw outputs) and times it on a backend, keyed in the
:class:`LatencyCache` so nothing is measured twice. Post-processing (decode + NMS) is a
near-constant per resolution and is left out of these quick measurements; the end-to-end
figure comes from :func:`gpunet_mm.deploy.export.export_onnx`.
"""

from __future__ import annotations

import copy
import os
import os.path as osp
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..models.arch_spec import GPUNetArch
from .backends import get_backend
from .backends.base import LatencyResult
from .cache import LatencyCache, LatencyKey, config_hash

# A light RetinaNet around any GPUNet: the search's quick latency proxy (CPU friendly).
SMALL_RETINANET: Dict[str, Any] = dict(
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    backbone=dict(type='GPUNet', tier=0, out_indices=(2, 3, 4), init_cfg=None),
    neck=dict(
        type='FPN',
        in_channels=[64, 256, 704],
        out_channels=64,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5,
    ),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=4,
        in_channels=64,
        stacked_convs=1,
        feat_channels=64,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=4,
            scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128],
        ),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0),
    ),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100,
    ),
)


@dataclass(frozen=True)
class LatencyTarget:
    """Where latency is measured: backend, device, precision, batch, threads."""

    backend: str = 'onnxruntime'
    device: str = 'cpu'
    precision: str = 'fp32'
    batch: int = 1
    threads: Optional[int] = None
    iters: int = 20
    warmup: int = 5

    def make_backend(self):
        kwargs: Dict[str, Any] = {}
        if self.backend in ('onnxruntime', 'torch'):
            kwargs = dict(device=self.device, threads=self.threads)
        return get_backend(self.backend, **kwargs)


def detector_cfg_for_arch(
    arch: GPUNetArch, template: Optional[Dict[str, Any]] = None, out_indices=(2, 3, 4)
) -> Dict[str, Any]:
    """The template detector config with ``arch`` as backbone and matching neck inputs."""
    cfg = copy.deepcopy(template or SMALL_RETINANET)
    cfg['backbone'] = dict(
        type='GPUNet', arch=arch.to_dict(), out_indices=tuple(out_indices), init_cfg=None
    )
    chans = arch.level_channels()
    cfg['neck']['in_channels'] = [chans[i] for i in out_indices]
    return cfg


def template_hash(template: Optional[Dict[str, Any]] = None, variant: str = 'net') -> str:
    """Hash of the detector template without its backbone (the cache's ``model_hash``)."""
    cfg = copy.deepcopy(template or SMALL_RETINANET)
    cfg.pop('backbone', None)
    cfg.get('neck', {}).pop('in_channels', None)
    return config_hash(dict(cfg=cfg, variant=variant))


class RawNetwork(nn.Module):
    """Backbone + neck + head with the head outputs flattened (no decoding / NMS)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor):
        outs = self.detector.bbox_head(self.detector.extract_feat(x))
        return tuple(t for group in outs for t in group)


def export_raw(model: nn.Module, shape: Tuple[int, int], batch: int, out_file: str) -> float:
    """Export :class:`RawNetwork` (static shape) to ONNX; returns seconds taken."""
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            RawNetwork(model).eval(),
            (torch.rand(batch, 3, *shape),),
            out_file,
            dynamo=False,
            opset_version=17,
            input_names=['input'],
            do_constant_folding=True,
        )
    return time.perf_counter() - t0


def measure_arch(
    arch: GPUNetArch,
    target: LatencyTarget = LatencyTarget(),
    shape: Optional[Tuple[int, int]] = None,
    cache: Optional[LatencyCache] = None,
    template: Optional[Dict[str, Any]] = None,
    work_dir: Optional[str] = None,
) -> Tuple[LatencyResult, bool]:
    """Latency of ``arch`` in the detector template on ``target``; returns (result, cached).

    ``shape`` defaults to the arch's own resolution (square).
    """
    from ..apis.runner import build_model

    shape = tuple(shape or (arch.resolution, arch.resolution))
    backend = target.make_backend()
    key = LatencyKey(
        arch_hash=arch.structural_hash(),
        shape=shape,
        batch=target.batch,
        precision=target.precision,
        backend=backend.name if target.backend != 'torch' else f'torch-{backend.mode}',
        device=backend.device_key(),
        model_hash=template_hash(template),
    )

    def run() -> LatencyResult:
        torch.manual_seed(0)
        model = build_model(detector_cfg_for_arch(arch, template), 'mmdet').eval()
        kw = dict(
            shape=shape,
            batch=target.batch,
            iters=target.iters,
            warmup=target.warmup,
            precision=target.precision,
        )
        if target.backend == 'torch':
            return backend.measure(RawNetwork(model), **kw)
        tmp = work_dir or tempfile.mkdtemp(prefix='gpunet_lat_')
        os.makedirs(tmp, exist_ok=True)
        path = osp.join(tmp, f'{key.digest()}.onnx')
        export_raw(model, shape, target.batch, path)
        try:
            return backend.measure(path, **kw)
        finally:
            if work_dir is None:
                os.remove(path)
                os.rmdir(tmp)

    if cache is None:
        return run(), False
    return cache.get_or_measure(key, run)
