"""``GPUNetClassifier``: an mmpretrain ``ImageClassifier`` whose head width comes from the arch.

The head's input width is the backbone's tail width (and, for the distilled family, its
hidden width the second tail width): writing them in every config repeats a fact of the
arch. With ``head=dict(in_channels=None, hidden_channels=None)`` (as
``configs/_base_/models/gpunet_cls.py``) they are read from ``backbone``'s ``tier``/``arch``;
given values must agree with the arch. The result is a plain ``ImageClassifier`` (same
module tree, same checkpoint keys); this is a builder registered under a type name.
"""

from __future__ import annotations

from typing import Any, Dict

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
