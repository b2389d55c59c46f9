"""Classification head matching the release's tails (the part after global pooling)."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead

from ..registry import MODELS


@MODELS.register_module()
class GPUNetClsHead(ClsHead):
    """``[Linear(no bias) -> ReLU] -> Dropout -> Linear`` on pooled features.

    The GPUNet-0/1/2/P0/P1 tail after pooling is dropout + linear (``hidden_channels=None``);
    the distilled D1/D2 tail has a bias-free 1x1 conv + ReLU on the pooled 1152-d vector
    first, which is a bias-free linear layer here (``hidden_channels=1984``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        hidden_channels: Optional[int] = None,
        dropout: float = 0.2,
        init_cfg: Optional[Dict] = dict(type='Normal', layer='Linear', std=0.01),
        **kwargs,
    ) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes: got {num_classes}; allowed: integers > 0')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout: got {dropout}; allowed: [0, 1)')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.hidden = None
        fc_in = in_channels
        if hidden_channels:
            self.hidden = nn.Sequential(
                nn.Linear(in_channels, hidden_channels, bias=False), nn.ReLU(inplace=True)
            )
            fc_in = hidden_channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(fc_in, num_classes)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        return self.hidden(x) if self.hidden is not None else x

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.dropout(self.pre_logits(feats)))
