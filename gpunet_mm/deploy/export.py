"""End-to-end ONNX export of mmdet single-stage detectors (backbone to NMS in one graph).

Why our own exporter rather than mmdeploy: mmdeploy 1.3.1 installs only without its pinned
dependencies, fails on torch >= 2.6's default exporter, and its TensorRT side targets
TensorRT 8. What a latency search needs is small: one wrapper module that runs the
detector's own backbone/neck/head, decodes boxes with mmdet's coder math, and ends in a
backend-native NMS (see :mod:`.nms`). It is traced with the TorchScript exporter
(``dynamo=False``), because the NMS operators are emitted by ``autograd.Function.symbolic``.

Modules: :mod:`.loading` (detector and its checks), :mod:`.wrapper` (the traced module),
:mod:`.onnx_passes` (graph passes); this one traces and writes the file.

The graph is described in :mod:`.wrapper`.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import time
import warnings
from typing import Any, Dict, Mapping, Union

import torch
import torch.nn as nn

from .config import DeployConfig
from .loading import (
    SUPPORTED_HEADS,
    ShapeError,
    UnsupportedModelError,
    arch_hash_of,
    build_detector,
    check_shape,
    head_kind,
    network_stride,
)
from .onnx_passes import to_fp16
from .two_stage import mask_size
from .wrapper import End2EndDetector, make_wrapper

__all__ = [
    'SUPPORTED_HEADS',
    'End2EndDetector',
    'ShapeError',
    'UnsupportedModelError',
    'arch_hash_of',
    'build_detector',
    'check_shape',
    'export_onnx',
    'head_kind',
    'make_wrapper',
    'network_stride',
]


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
    # fp16 is traced in fp32 and converted afterwards (see onnx_passes.to_fp16): tracing a
    # half model on a CPU takes minutes, because PyTorch's CPU half convolutions are slow
    wrapper = make_wrapper(model, DeployConfig.from_any({**cfg.to_dict(), 'precision': 'fp32'}))
    h, w = cfg.input_shape
    dummy = torch.rand(cfg.batch_size, 3, h, w) * 255
    outputs = ['dets', 'labels'] + (['masks'] if cfg.masks else [])
    dynamic_axes = None
    if cfg.dynamic:
        dynamic_axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        dynamic_axes.update({name: {0: 'batch'} for name in outputs})
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
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            custom_opsets={'TRT': 1} if cfg.backend == 'tensorrt' else None,
        )
    proto = onnx.load(out_file)
    if cfg.precision == 'fp16':
        proto = to_fp16(proto)
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
            **(
                {
                    'masks': [
                        'batch' if cfg.dynamic else cfg.batch_size,
                        post.max_detections,
                        *mask_size(model),
                    ]
                }
                if cfg.masks
                else {}
            ),
        },
        arch_hash=arch_hash_of(model),
        num_nodes=len(proto.graph.node),
        op_counts=dict(sorted(ops.items())),
        torch=torch.__version__,
        onnx_version=onnx.__version__,
    )
