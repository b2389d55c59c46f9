"""Put a GPUNet architecture into a detector or classifier config: :func:`with_arch`.

The search trains candidates from it (``search/trainer.py``), the latency service exports
and times them (``deploy/latency.py``) and the hub writes configs for search results
(``hub/configs.py``). One function, so that what the search trains, what it times and what
the hub hands out are the same network:

* the backbone becomes ``dict(type='GPUNet', arch=...)``: ``tier``/``arch``/``pretrained``
  go, ``init_cfg=None`` (a new arch has no weights to load) and ``frozen_stages=-1`` (no
  weights to keep frozen); every other backbone setting of the template is kept;
* a detector's neck ``in_channels`` become the arch's level channels at the backbone's
  ``out_indices`` (the template's, else ``(2, 3, 4)``: strides 8/16/32);
* a classifier's head widths (``in_channels``, ``hidden_channels`` where the head has them)
  become the arch's tail widths;
* with ``resolution``, the one resolution rule: every ``scale`` and ``crop_size`` of every
  pipeline step (nested wrappers too) of the ``*_pipeline`` keys and of the data loaders'
  datasets becomes ``resolution`` (a pair for a pair, a number for a number).
  ``resolution=None`` leaves the pipelines alone (latency export, COCO hub configs).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional, Sequence

from .models.arch_spec import GPUNetArch

#: the backbone's levels the necks read by default (strides 8/16/32)
DEFAULT_OUT_INDICES = (2, 3, 4)
#: backbone keys the arch decides (dropped from the template's backbone)
ARCH_KEYS = ('tier', 'arch', 'init_cfg', 'pretrained')
_PIPELINES = ('train_pipeline', 'val_pipeline', 'test_pipeline')
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_SIZE_KEYS = ('scale', 'crop_size')


def is_gpunet(backbone: Any) -> bool:
    """Whether a backbone config is GPUNet (scoped names such as ``gpunet_mm.GPUNet`` too)."""
    if not isinstance(backbone, Mapping):
        return False
    return str(backbone.get('type', '')).split('.')[-1] == 'GPUNet'


def is_classifier(model: Mapping[str, Any]) -> bool:
    """An mmpretrain classifier has a ``head``; mmdet detectors have ``bbox_head``/``roi_head``."""
    return 'head' in model and 'bbox_head' not in model and 'roi_head' not in model


def with_arch(
    cfg: Mapping[str, Any],
    arch: GPUNetArch,
    resolution: Optional[int] = None,
    out_indices: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """A deep copy of ``cfg`` whose GPUNet backbone is ``arch`` (see the module docstring).

    Args:
        cfg: a whole config (with ``model``) or a model dict (with ``backbone``).
        arch: the architecture.
        resolution: the input size the pipelines resize to; None keeps them.
        out_indices: the backbone levels to return (default: the template's, else
            ``(2, 3, 4)``).

    Raises:
        ValueError: no GPUNet backbone, or ``out_indices`` outside the arch's levels.
    """
    out = copy.deepcopy(dict(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg))
    whole = isinstance(out.get('model'), Mapping)
    if whole:
        model = out['model'] = dict(out['model'])
    else:
        model = out
    bb = model.get('backbone')
    if not is_gpunet(bb):
        got = bb.get('type') if isinstance(bb, Mapping) else None
        raise ValueError(
            f'config backbone type is {got!r}; allowed: GPUNet (with_arch replaces its arch)'
        )
    bb = {k: v for k, v in bb.items() if k not in ARCH_KEYS}
    bb.update(arch=arch.to_dict(), init_cfg=None, frozen_stages=-1)
    if is_classifier(model):
        head = model.get('head')
        if isinstance(head, Mapping):
            widths = (
                arch.cls_head_channels()
                if arch.tail_channels
                else dict(in_channels=arch.out_channels, hidden_channels=None)
            )
            model['head'] = dict(head, **{k: v for k, v in widths.items() if k in head})
    else:
        idx = tuple(out_indices or bb.get('out_indices') or DEFAULT_OUT_INDICES)
        chans = arch.level_channels()
        bad = [i for i in idx if not -len(chans) <= i < len(chans)]
        if bad:
            raise ValueError(
                f'out_indices {list(idx)}: {bad} out of range for arch {arch.name!r} with '
                f'{len(chans)} levels (0..{len(chans) - 1})'
            )
        bb['out_indices'] = idx
        neck = model.get('neck')
        if isinstance(neck, Mapping) and 'in_channels' in neck:
            model['neck'] = dict(neck, in_channels=[chans[i] for i in idx])
    model['backbone'] = bb
    if resolution is not None and whole:
        for key in _PIPELINES:
            _set_size(out.get(key), int(resolution))
        for key in _LOADERS:
            loader = out.get(key)
            if isinstance(loader, Mapping) and isinstance(loader.get('dataset'), Mapping):
                _set_size(loader['dataset'].get('pipeline'), int(resolution))
    return out


def _set_size(node: Any, size: int) -> None:
    """The resolution rule, in place: every ``scale``/``crop_size`` of a pipeline step."""
    if isinstance(node, dict):
        if 'type' in node:
            for key in _SIZE_KEYS:
                if key in node and node[key] is not None:
                    node[key] = (size, size) if isinstance(node[key], (list, tuple)) else size
        for v in node.values():
            if isinstance(v, (dict, list, tuple)):
                _set_size(v, size)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _set_size(v, size)
