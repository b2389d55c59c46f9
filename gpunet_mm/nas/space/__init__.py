"""Search spaces behind one numeric interface, one module each.

* :mod:`.base`: the :class:`SearchSpace` interface every optimiser relies on (the point
  encoding is described there), sampling helpers, :class:`InfeasibleSpaceError`.
* :mod:`.box`: :class:`BoxSpace`, a continuous box (the benchmark test functions).
* :mod:`.discrete`: :class:`Dim` and :class:`DiscreteSpace`, a product of finite choices.
* :mod:`.gpunet`: the paper's stage table (:class:`StageSpec`, :data:`CLASSIFICATION_STAGES`)
  and :class:`GPUNetSpace`, whose points decode to
  :class:`~gpunet_mm.models.arch_spec.GPUNetArch`.

:func:`build_space` builds any of them from an mmengine-style ``dict(type=...)``; each
class is registered in :data:`~gpunet_mm.nas.registry.NAS_SPACES`.
"""

from __future__ import annotations

from typing import Any, Mapping, Union

from ..registry import NAS_SPACES, lookup
from .base import InfeasibleSpaceError, SearchSpace
from .box import BoxSpace
from .discrete import Dim, DiscreteSpace
from .gpunet import (
    CLASSIFICATION_RESOLUTIONS,
    CLASSIFICATION_STAGES,
    DETECTION_RESOLUTIONS,
    TAIL_CHANNELS,
    GPUNetSpace,
    StageSpec,
)


def build_space(cfg: Union[SearchSpace, Mapping[str, Any]]) -> SearchSpace:
    """Build a space from an mmengine-style dict: ``dict(type='GPUNetSpace', ...)``."""
    if isinstance(cfg, SearchSpace):
        return cfg
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise ValueError(f'space config: got {cfg!r}; allowed: a dict with a "type" key')
    from ...schema import check_arguments

    cfg = dict(cfg)
    kind = cfg.pop('type')
    cls = lookup(NAS_SPACES, kind, 'space type')
    check_arguments(cls, cfg, 'search_space')  # the class's signature is its schema
    return cls(**cfg)


__all__ = [
    'SearchSpace',
    'BoxSpace',
    'Dim',
    'DiscreteSpace',
    'StageSpec',
    'GPUNetSpace',
    'CLASSIFICATION_STAGES',
    'CLASSIFICATION_RESOLUTIONS',
    'DETECTION_RESOLUTIONS',
    'TAIL_CHANNELS',
    'InfeasibleSpaceError',
    'build_space',
]
