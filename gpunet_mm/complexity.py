"""Parameter / FLOP counts of GPUNet models (mmengine's counter; no timing here)."""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, resolution: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward at batch 1 (mmengine counts a MAC as one flop)."""
    from mmengine.analysis import FlopAnalyzer

    model = model.eval()
    with torch.no_grad():
        x = torch.zeros(1, in_channels, resolution, resolution)
        analyzer = FlopAnalyzer(model, (x,))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analyzer.total())


def complexity_table(resolution: Optional[int] = None) -> Dict[str, Dict[str, float]]:
    """Per tier: input resolution, parameters (M) and GMACs (multiply-accumulates, 1e9).

    mmengine's counter counts one multiply-accumulate as one "flop", so the figure is MACs;
    papers quoting FLOPs as 2 x MACs report twice the number.
    """
    from .models import TIERS
    from .models.classifiers import build_release_classifier

    out = {}
    for a in TIERS:
        res = resolution or a.resolution
        m = build_release_classifier(arch=a)
        out[a.name] = dict(
            resolution=res, params_m=count_params(m) / 1e6, gmacs=count_flops(m, res) / 1e9
        )
    return out


class TensorMode(nn.Module):
    """An mmpretrain / mmdet model in ``mode='tensor'`` (raw outputs): what the FLOP counter
    traces and what a classifier's ONNX export holds."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model(x, mode='tensor')
