"""Weight inheritance: a new candidate starts from the closest finished one.

Once-for-All trains one supernet whose sub-networks share weights: a smaller kernel is the
centre of the larger one, a narrower layer the leading channels of the wider one, a shallower
stage the first layers of the deeper one. The same rules let a candidate of the search start
from a finished candidate's checkpoint instead of from scratch:

* a tensor of the same name and shape is copied;
* a tensor of the same name and rank but another shape gets the overlap: leading entries on
  channel dimensions (out, in), the centred window on the spatial dimensions of a conv
  kernel; a larger child keeps its own initialisation outside the parent's part (the
  parent's 3x3 kernel lands in the centre of the child's 5x5), a smaller child takes the
  centre crop of the parent's kernel;
* everything else (another block type at that position, a layer the parent lacks) keeps the
  initialisation it has now.

Names line up because ``gpunet_mm.models.backbones.GPUNet`` names layer ``p`` of level
``l`` ``layers.l.p`` in every architecture (a shallower level keeps its first layers, as
OFA's elastic depth does), and the neck and head come from the same base config.

Whether it pays is measured by the fidelity study (``benchmarks/benchmark_fidelity.py``); the
search uses it only when ``inherit_from`` is in a trial's payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: spatial dimensions of a conv kernel (out, in, kh, kw): centred; others: leading entries
_SPATIAL_FROM = 2


@dataclass
class InheritReport:
    """What ``inherit_weights`` did, by tensor name."""

    copied: List[str] = field(default_factory=list)  # same shape: the whole tensor
    partial: List[str] = field(default_factory=list)  # the overlap of two shapes
    kept: List[str] = field(default_factory=list)  # left as initialised
    copied_elems: int = 0
    total_elems: int = 0

    @property
    def fraction(self) -> float:
        """Share of the child's tensor elements that came from the parent."""
        return self.copied_elems / self.total_elems if self.total_elems else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return dict(
            copied=len(self.copied),
            partial=len(self.partial),
            kept=len(self.kept),
            fraction=round(self.fraction, 4),
        )


def overlap_slices(child: Sequence[int], parent: Sequence[int]) -> Tuple[Tuple, Tuple]:
    """Index tuples (into the child, into the parent) of the region the two shapes share.

    Dimensions from the third on (a conv kernel's height and width) are centred; the others
    (output and input channels, vector length) are leading.
    """
    cs, ps = [], []
    for d, (c, p) in enumerate(zip(child, parent)):
        n = min(c, p)
        if d >= _SPATIAL_FROM:
            c0, p0 = (c - n) // 2, (p - n) // 2
        else:
            c0 = p0 = 0
        cs.append(slice(c0, c0 + n))
        ps.append(slice(p0, p0 + n))
    return tuple(cs), tuple(ps)


def inherit_state(
    child: Mapping[str, Any], parent: Mapping[str, Any]
) -> Tuple[Dict[str, Any], InheritReport]:
    """The child's state dict with the parent's weights inherited (new tensors; the inputs
    are not modified), and what was copied. Works on torch tensors and numpy arrays."""
    out: Dict[str, Any] = {}
    rep = InheritReport()
    for name, c in child.items():
        size = int(np.prod(tuple(c.shape))) if hasattr(c, 'shape') else 0
        rep.total_elems += size
        p = parent.get(name)
        if p is None or not hasattr(p, 'shape') or len(p.shape) != len(c.shape):
            out[name] = c
            rep.kept.append(name)
            continue
        if tuple(p.shape) == tuple(c.shape):
            out[name] = p.clone() if hasattr(p, 'clone') else np.array(p, copy=True)
            rep.copied.append(name)
            rep.copied_elems += size
            continue
        new = c.clone() if hasattr(c, 'clone') else np.array(c, copy=True)
        cs, ps = overlap_slices(tuple(c.shape), tuple(p.shape))
        new[cs] = p[ps].to(new.dtype) if hasattr(new, 'dtype') and hasattr(p, 'to') else p[ps]
        out[name] = new
        rep.partial.append(name)
        rep.copied_elems += int(np.prod([s.stop - s.start for s in cs])) if cs else 1
    return out, rep


def inherit_weights(model: Any, parent_state: Mapping[str, Any]) -> InheritReport:
    """Copy what ``inherit_state`` inherits into ``model``'s parameters and buffers, in
    place (the optimiser built on them keeps pointing at the same tensors)."""
    import torch

    sd = model.state_dict()
    parent = {
        k[len('module.') :] if k.startswith('module.') else k: v for k, v in parent_state.items()
    }
    new, rep = inherit_state(sd, parent)
    with torch.no_grad():
        for name in (*rep.copied, *rep.partial):
            sd[name].copy_(new[name])
    return rep


def load_parent_state(checkpoint: str) -> Dict[str, Any]:
    """The ``state_dict`` of a finished candidate's checkpoint (through mmengine's loader,
    so the package's weights-only loading applies)."""
    from mmengine.runner.checkpoint import _load_checkpoint

    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(sd, Mapping) or not sd:
        raise ValueError(f'inherit_from: {checkpoint} holds no state_dict')
    return dict(sd)


def backbone_shapes(arch: Any) -> Dict[str, Tuple[int, ...]]:
    """Tensor shapes of a GPUNet backbone (built on the meta device: no memory, no init)."""
    import torch

    from ..models.arch_spec import as_arch
    from ..models.backbones.gpunet import GPUNet

    a = as_arch(arch)
    with torch.device('meta'):
        net = GPUNet(arch=a, out_indices=(len(a.levels()) - 1,), init_cfg=None)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def transfer_fraction(child: Any, parent: Any) -> float:
    """Share of the child backbone's weight elements a parent would give it."""
    cs, ps = backbone_shapes(child), backbone_shapes(parent)
    total = got = 0
    for name, shape in cs.items():
        n = int(np.prod(shape))
        total += n
        p = ps.get(name)
        if p is not None and len(p) == len(shape):
            got += int(np.prod([min(a, b) for a, b in zip(shape, p)]))
    return got / total if total else 0.0


def closest_parent(
    arch: Any, finished: Sequence[Mapping[str, Any]], min_fraction: float = 0.0
) -> Optional[Dict[str, Any]]:
    """The finished candidate (``dict(arch=..., checkpoint=...)``) that would give ``arch``
    the largest share of its backbone weights; ties: the earlier one. None when ``finished``
    is empty or no candidate reaches ``min_fraction``."""
    best, best_f = None, -1.0
    for cand in finished:
        f = transfer_fraction(arch, cand['arch'])
        if f > best_f:
            best, best_f = cand, f
    if best is None or best_f < min_fraction:
        return None
    return dict(best, fraction=best_f)


def check_parent_rung(parent_rung: int, rungs: Any) -> int:
    """The rung index ``nas.inherit.parent_rung`` names (-1: the top) among ``rungs``
    (:class:`gpunet_mm.search.fidelity.Rungs`, or None: one rung, the proxy schedule)."""
    n = 1 if rungs is None else len(rungs.epochs)
    if not -n <= parent_rung < n:
        raise ValueError(
            f'nas.inherit.parent_rung: got {parent_rung}; allowed: -{n} to {n - 1} '
            f'(the search has {n} rung(s); -1: the top)'
        )
    return parent_rung % n


def inherit_hook(checkpoint: str) -> Any:
    """An mmengine hook that, before training (after the model's own initialisation and
    only when the run does not resume), inherits a finished candidate's weights from
    ``checkpoint``; its ``report`` says what was copied. (Built here so this module imports
    without torch.)"""
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper

    class InheritHook(Hook):
        priority = 'HIGH'

        def __init__(self) -> None:
            self.checkpoint = checkpoint
            self.report = InheritReport()

        def before_train(self, runner: Any) -> None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self.report = inherit_weights(model, load_parent_state(self.checkpoint))
            runner.logger.info(f'inherited weights from {self.checkpoint}: {self.report.to_dict()}')

    return InheritHook()
