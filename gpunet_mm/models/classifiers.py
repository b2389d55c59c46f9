"""``GPUNetClassifier``: an mmpretrain ``ImageClassifier`` whose head width comes from the arch.

The head's input width is the backbone's tail width (and, for the distilled family, its
hidden width the second tail width): writing them in every config repeats a fact of the
arch. With ``head=dict(in_channels=None, hidden_channels=None)`` (as
``configs/_base_/models/gpunet_cls.py``) they are read from ``backbone``'s ``tier``/``arch``;
given values must agree with the arch. The result is a plain ``ImageClassifier`` (same
module tree, same checkpoint keys); this is a builder registered under a type name.
"""

from __future__ import annotations

from typing import Any, Dict, Union

import torch.nn as nn

from ..registry import MODELS


@MODELS.register_module()
def GPUNetClassifier(backbone: Dict[str, Any], head: Dict[str, Any], **kwargs: Any) -> nn.Module:  # noqa: N802  (a registered type name)
    """Build ``ImageClassifier(backbone=..., head=..., **kwargs)`` with the head widths filled.

    Raises:
        ValueError: the backbone is not a ``GPUNet``, or a given head width disagrees with
            the arch's tail.
    """
    from mmpretrain.models.classifiers import ImageClassifier

    from .backbones.gpunet import resolve_arch

    head = dict(head)
    if backbone.get('type') != 'GPUNet':
        raise ValueError(
            f"GPUNetClassifier: backbone type {backbone.get('type')!r}; allowed: 'GPUNet' "
            '(use ImageClassifier with explicit head widths for other backbones)'
        )
    arch = resolve_arch(backbone.get('tier'), backbone.get('arch'))
    for key, value in arch.cls_head_channels().items():
        given = head.get(key)
        if given is None:
            head[key] = value
        elif given != value:
            raise ValueError(
                f'GPUNetClassifier: head.{key}={given!r} but {arch.name} gives {value!r}; '
                f'allowed: None (derived from the arch) or {value!r}'
            )
    return ImageClassifier(backbone=dict(backbone), head=head, **kwargs)


def release_classifier_cfg(
    tier: Union[int, str, None] = None,
    arch: Any = None,
    num_classes: int = 1000,
    **backbone_kwargs: Any,
) -> Dict[str, Any]:
    """The model config of the release classifier of ``tier`` or ``arch``: GPUNet, global
    pooling and the tail head, whose widths :func:`GPUNetClassifier` derives."""
    if (tier is None) == (arch is None):
        raise ValueError(
            f'give exactly one of tier= and arch=; got tier={tier!r}, '
            f'arch={"set" if arch is not None else None}'
        )
    if arch is not None and hasattr(arch, 'to_dict'):
        arch = arch.to_dict()
    key: Dict[str, Any] = dict(tier=tier) if tier is not None else dict(arch=arch)
    return dict(
        type='GPUNetClassifier',
        backbone=dict(type='GPUNet', **key, **backbone_kwargs),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='GPUNetClsHead', num_classes=num_classes),
    )


def build_release_classifier(
    tier: Union[int, str, None] = None,
    arch: Any = None,
    num_classes: int = 1000,
    **backbone_kwargs: Any,
) -> nn.Module:
    """Build :func:`release_classifier_cfg` in mmpretrain's scope (whatever scope is current)."""
    from mmengine.registry import DefaultScope

    cfg = release_classifier_cfg(tier, arch, num_classes, **backbone_kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)
