"""The registries gpunet_mm's modules are registered in: the codebases' own ``MODELS``.

As in OpenMMLab plugins, each class carries ``@MODELS.register_module()`` against
mmpretrain's ``MODELS`` (classifier parts; mmpretrain is required, the backbone and head
derive from its bases) and, for ``GPUNet``, ``@DET_MODELS.register_module()`` against
mmdet's when mmdet is installed, so ``backbone=dict(type='GPUNet', ...)`` builds under either
``default_scope``. Registration happens when the module defining the class is imported;
:func:`register_all_modules` imports them, as ``mmdet.utils.register_all_modules`` does, and
``import gpunet_mm`` (or ``custom_imports=dict(imports=['gpunet_mm'])``) calls it.
"""

from __future__ import annotations

from typing import Callable, List, TypeVar

from mmengine.registry import Registry
from mmpretrain.registry import MODELS

try:
    from mmdet.registry import MODELS as _DET_MODELS
except ImportError:  # detection is optional: classification works without mmdet
    _DET_MODELS = None

#: mmdet's ``MODELS``, or None without mmdet
DET_MODELS: Registry | None = _DET_MODELS

T = TypeVar('T')


def register_detection_module() -> Callable[[T], T]:
    """``@DET_MODELS.register_module()`` where mmdet is installed, else a no-op decorator."""
    if DET_MODELS is None:
        return lambda module: module
    return DET_MODELS.register_module()


def register_all_modules() -> List[str]:
    """Import the modules whose decorators register them; returns the scopes registered into.

    Importing is idempotent, so calling this again registers nothing twice.
    """
    from .apis import checkpoint  # noqa: F401  (the strict 'GPUNetPretrained' initialiser, the hook)
    from .models import backbones, classifiers, heads  # noqa: F401

    return ['mmpretrain'] + (['mmdet'] if DET_MODELS is not None else [])


__all__ = ['DET_MODELS', 'MODELS', 'register_all_modules', 'register_detection_module']
