"""GPUNet's two residual blocks, configured by their arguments (nothing patched afterwards).

mmpretrain's ``InvertedResidual`` drops the 1x1 expansion conv when ``mid == in`` and its
``EdgeResidual`` always pads ``k // 2``; the release keeps the expansion conv in every IRB
(GPUNet-D1/D2 have ``mid == in`` layers) and leaves stride-2 fused convs unpadded. Like
timm's ``InvertedResidual``/``EdgeResidual``, these blocks always build their expansion and
take the padding as an argument. Submodule names are mmpretrain's (``expand_conv``,
``depthwise_conv``, ``se``, ``linear_conv``; ``conv1``, ``se``, ``conv2``), so checkpoints
of the earlier mmpretrain-built backbone and the release-key mapping stay valid.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmpretrain.models.utils import SELayer


class _MBConv(BaseModule):
    """The part both blocks share: spatial stage (subclass), optional SE, 1x1 linear
    projection (``project_name``), residual through stochastic depth when shapes allow.

    Args:
        in_channels / out_channels / mid_channels: block input, output and expanded widths.
        kernel_size: of the spatial conv; ``padding`` defaults to ``kernel_size // 2``.
        stride: of the spatial conv, 1 or 2.
        se_cfg: ``SELayer`` arguments, or None for no SE.
        conv_cfg / norm_cfg / act_cfg: for every conv (``act_cfg`` not on the projection);
            defaults: Conv2d, BN, ReLU.
        drop_path_rate: stochastic depth of the residual branch.
    """

    project_name = ''

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        se_cfg: Optional[Dict] = None,
        conv_cfg: Optional[Dict] = None,
        norm_cfg: Optional[Dict] = None,
        act_cfg: Optional[Dict] = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride: got {stride!r}; allowed: 1, 2')
        self.with_residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        convs = dict(
            conv_cfg=conv_cfg, norm_cfg=norm_cfg if norm_cfg is not None else dict(type='BN')
        )
        act_cfg = act_cfg if act_cfg is not None else dict(type='ReLU')
        self._build_spatial(
            in_channels,
            mid_channels,
            kernel_size,
            stride,
            kernel_size // 2 if padding is None else padding,
            dict(convs, act_cfg=act_cfg),
        )
        self.se = SELayer(**se_cfg) if se_cfg is not None else None
        project = ConvModule(mid_channels, out_channels, 1, act_cfg=None, **convs)
        self.add_module(self.project_name, project)

    def _build_spatial(
        self, cin: int, mid: int, k: int, stride: int, padding: int, cfg: Dict[str, Any]
    ) -> None:
        raise NotImplementedError

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._spatial(x)
        if self.se is not None:
            out = self.se(out)
        out = getattr(self, self.project_name)(out)
        return x + self.drop_path(out) if self.with_residual else out


class GPUNetIRB(_MBConv):
    """MBConv: 1x1 expand -> kxk depthwise -> [SE] -> 1x1 linear projection.

    The expansion conv is built even when ``mid_channels == in_channels`` (as the release).
    """

    project_name = 'linear_conv'

    def _build_spatial(
        self, cin: int, mid: int, k: int, stride: int, padding: int, cfg: Dict[str, Any]
    ) -> None:
        self.expand_conv = ConvModule(cin, mid, 1, **cfg)
        self.depthwise_conv = ConvModule(
            mid, mid, k, stride=stride, padding=padding, groups=mid, **cfg
        )

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        return self.depthwise_conv(self.expand_conv(x))


class GPUNetFusedIRB(_MBConv):
    """Fused-MBConv (EdgeResidual): kxk expand -> [SE] -> 1x1 linear projection.

    The release's stride-2 fused convs use ``padding=0`` (see
    ``GPUNetArch.levels(release_padding=True)``).
    """

    project_name = 'conv2'

    def _build_spatial(
        self, cin: int, mid: int, k: int, stride: int, padding: int, cfg: Dict[str, Any]
    ) -> None:
        self.conv1 = ConvModule(cin, mid, k, stride=stride, padding=padding, **cfg)

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(x)
