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

from typing import Dict, Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmpretrain.models.utils import SELayer


class _Residual(BaseModule):
    """Adds the input back (through stochastic depth) when shapes allow it."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, drop_path_rate: float
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride: got {stride!r}; allowed: 1, 2')
        self.with_residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._body(x)
        return x + self.drop_path(out) if self.with_residual else out


class GPUNetIRB(_Residual):
    """MBConv: 1x1 expand -> kxk depthwise -> [SE] -> 1x1 linear projection.

    The expansion conv is built even when ``mid_channels == in_channels`` (as the release).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_cfg: Optional[Dict] = None,
        conv_cfg: Optional[Dict] = None,
        norm_cfg: Optional[Dict] = None,
        act_cfg: Optional[Dict] = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, drop_path_rate)
        norm_cfg = norm_cfg if norm_cfg is not None else dict(type='BN')
        act_cfg = act_cfg if act_cfg is not None else dict(type='ReLU')
        self.expand_conv = ConvModule(
            in_channels, mid_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg
        )
        self.depthwise_conv = ConvModule(
            mid_channels,
            mid_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=mid_channels,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.se = SELayer(**se_cfg) if se_cfg is not None else None
        self.linear_conv = ConvModule(
            mid_channels, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None
        )

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        out = self.depthwise_conv(self.expand_conv(x))
        if self.se is not None:
            out = self.se(out)
        return self.linear_conv(out)


class GPUNetFusedIRB(_Residual):
    """Fused-MBConv (EdgeResidual): kxk expand -> [SE] -> 1x1 linear projection.

    ``padding`` of the kxk conv defaults to ``kernel_size // 2``; the release's stride-2
    fused convs use 0 (see ``GPUNetArch.levels(release_padding=True)``).
    """

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
        super().__init__(in_channels, out_channels, stride, drop_path_rate)
        norm_cfg = norm_cfg if norm_cfg is not None else dict(type='BN')
        act_cfg = act_cfg if act_cfg is not None else dict(type='ReLU')
        self.conv1 = ConvModule(
            in_channels,
            mid_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if padding is None else padding,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.se = SELayer(**se_cfg) if se_cfg is not None else None
        self.conv2 = ConvModule(
            mid_channels, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None
        )

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.se is not None:
            out = self.se(out)
        return self.conv2(out)
