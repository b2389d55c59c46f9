"""Loading an mmdet detector for export, and the facts the export checks about it.

:func:`build_detector` builds it (checkpoint loaded with the arch check), :func:`head_kind`
says whether the end-to-end wrapper supports its head, :func:`network_stride` and
:func:`check_shape` keep input shapes to multiples of the deepest stride.
"""

from __future__ import annotations

import math
import os.path as osp
from typing import Any, Dict, Optional, Tuple, Union

import torch.nn as nn

from .heads import UnsupportedModelError, exporter_for, supported_heads  # noqa: F401 (re-exported)

#: the heads :mod:`.heads` exports (kept as a tuple of ``'Head (how)'`` strings)
SUPPORTED_HEADS = tuple(supported_heads().split('; '))


class ShapeError(ValueError):
    """The input shape does not fit the network (stride) or the deploy profile."""


def build_detector(
    config: Union[str, Any],
    checkpoint: Optional[str] = None,
    cfg_options: Optional[Dict[str, Any]] = None,
    device: str = 'cpu',
) -> nn.Module:
    """An mmdet detector in eval mode from a config path/Config (+ optional checkpoint)."""
    from mmengine.config import Config

    from ..apis.runner import build_model

    if isinstance(config, str) and not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config) if isinstance(config, str) else config
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
    """``'anchor'`` or ``'point'`` (a dense head's priors) or ``'two_stage'`` (R-CNN).

    Raises :class:`UnsupportedModelError` naming the module when the exporter has no path
    for the detector or its head."""
    from mmdet.models.detectors import TwoStageDetector

    from .heads import TWO_STAGE_DETECTORS

    if isinstance(model, TwoStageDetector) and type(model).__name__ in TWO_STAGE_DETECTORS:
        from .two_stage import check_two_stage

        check_two_stage(model)
        return 'two_stage'
    exporter_for(model)
    gen = model.bbox_head.prior_generator
    return 'anchor' if hasattr(gen, 'base_anchors') else 'point'


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


def arch_hash_of(model: nn.Module) -> Optional[str]:
    arch = getattr(getattr(model, 'backbone', None), 'arch', None)
    return arch.structural_hash() if hasattr(arch, 'structural_hash') else None
