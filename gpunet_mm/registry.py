"""Registers gpunet_mm's modules into the registries of the installed OpenMMLab codebases.

One class, several registries: mmpretrain's ``MODELS`` (classifiers) and, when mmdet is
installed, mmdet's ``MODELS`` (detectors). Both are children of mmengine's root registry,
so ``backbone=dict(type='GPUNet', ...)`` builds under either ``default_scope``.
"""

from __future__ import annotations

from typing import List


def register_all_modules() -> List[str]:
    """Register everything; returns the scopes registered into. Safe to call repeatedly."""
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    from .models.backbones import GPUNet
    from .models.classifiers import GPUNetClassifier
    from .models.heads import GPUNetClsHead

    scopes = ['mmpretrain']
    PRETRAIN_MODELS.register_module(module=GPUNet, force=True)
    PRETRAIN_MODELS.register_module(module=GPUNetClsHead, force=True)
    PRETRAIN_MODELS.register_module(name='GPUNetClassifier', module=GPUNetClassifier, force=True)
    try:
        from mmdet.registry import MODELS as DET_MODELS
    except ImportError:  # detection is optional: classification works without mmdet
        return scopes
    DET_MODELS.register_module(module=GPUNet, force=True)
    scopes.append('mmdet')
    return scopes
