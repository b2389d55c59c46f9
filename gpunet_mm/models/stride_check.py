"""A detector config whose neck outputs other strides than its heads assume does not train.

mmdet never checks it: Faster R-CNN with ``out_indices=(2, 3, 4)`` on a GPUNet gives an FPN
at strides 8-128 while the RPN's anchors and the RoI extractor assume 4-64; it trains, at
the wrong scales, and nothing says so. :func:`check_feature_strides` compares, on the model
config alone (no torch), the strides a GPUNet backbone + FPN-style neck produce with the
strides the heads declare, and raises a :class:`ValueError` naming both and the fix.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

#: necks whose outputs follow FPN's rule (``start_level``, ``end_level``, ``num_outs``)
FPN_LIKE = ('FPN', 'PAFPN', 'ChannelMapper')


def backbone_strides(backbone: Mapping[str, Any]) -> Optional[List[int]]:
    """Output strides of a GPUNet backbone config at its ``out_indices`` (None: not GPUNet)."""
    if str(backbone.get('type', '')).split('.')[-1] != 'GPUNet':
        return None
    from .backbones.gpunet import resolve_arch

    arch = resolve_arch(backbone.get('tier'), backbone.get('arch'))
    strides = [int(s) for s in arch.level_strides()]
    if arch.tail_channels:  # the tail keeps the last level's stride
        strides.append(strides[-1])
    idx = backbone.get('out_indices', (-1,))
    out: List[int] = []
    for i in (idx,) if isinstance(idx, int) else idx:
        if not -len(strides) <= int(i) < len(strides):
            return None  # the backbone itself reports a bad index
        out.append(strides[int(i)])
    return out


def neck_strides(neck: Any, in_strides: Sequence[int]) -> Optional[List[int]]:
    """Output strides of an FPN-style neck fed ``in_strides`` (None: a neck we do not model)."""
    if not isinstance(neck, Mapping) or str(neck.get('type', '')).split('.')[-1] not in FPN_LIKE:
        return None
    ins = list(in_strides)
    if neck['type'] == 'ChannelMapper':
        out = ins
    else:
        start = int(neck.get('start_level', 0))
        end = int(neck.get('end_level', -1))
        out = ins[start:] if end == -1 else ins[start : end + 1]
    num_outs = int(neck.get('num_outs', len(out)))
    while len(out) < num_outs:  # extra levels: stride-2 convs or max-pools on the last one
        out.append(out[-1] * 2)
    return out[:num_outs]


def _first(v: Any) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


def declared_strides(model: Mapping[str, Any]) -> List[Tuple[str, List[int]]]:
    """(config key, strides) of every head setting that assumes the neck's strides."""
    out = []
    for head in ('bbox_head', 'rpn_head'):
        h = model.get(head)
        if not isinstance(h, Mapping):
            continue
        gen = h.get('anchor_generator') or h.get('prior_generator')
        if isinstance(gen, Mapping) and gen.get('strides') is not None:
            out.append(
                (f'model.{head}.anchor_generator.strides', [_first(s) for s in gen['strides']])
            )
        elif h.get('strides') is not None:
            out.append((f'model.{head}.strides', [_first(s) for s in h['strides']]))
    roi = model.get('roi_head')
    if isinstance(roi, Mapping):
        ext = roi.get('bbox_roi_extractor')
        if isinstance(ext, Mapping) and ext.get('featmap_strides') is not None:
            strides = [_first(s) for s in ext['featmap_strides']]
            out.append(('model.roi_head.bbox_roi_extractor.featmap_strides', strides))
    return out


def check_feature_strides(model: Mapping[str, Any]) -> None:
    """Raise when a head assumes other feature strides than the backbone and neck give.

    Anchor generators and point heads must match the neck's outputs level by level (and in
    number); a RoI extractor reads the first ``len(featmap_strides)`` levels. Configs with a
    backbone other than GPUNet, or a neck that is not FPN-like, are not checked.
    """
    bb = model.get('backbone')
    if not isinstance(bb, Mapping):
        return
    bb_strides = backbone_strides(bb)
    if bb_strides is None:
        return
    neck = model.get('neck')
    if isinstance(neck, (list, tuple)):
        neck = neck[0] if len(neck) == 1 else None
    feats = neck_strides(neck, bb_strides) if neck is not None else bb_strides
    if feats is None:
        return
    for key, strides in declared_strides(model):
        prefix = 'roi_extractor' in key or 'featmap' in key
        ok = feats[: len(strides)] == strides if prefix else feats == strides
        if ok:
            continue
        hint = ''
        if feats and strides and feats[0] == 2 * strides[0]:
            hint = (
                '; a head that starts at stride 4 (two-stage detectors: Faster/Mask R-CNN) '
                'needs the stride-4 level too: backbone out_indices=(1, 2, 3, 4) with the '
                'neck in_channels to match'
            )
        raise ValueError(
            f'{key} {strides} do not match the feature strides the model produces {feats} '
            f'(GPUNet out_indices {tuple(bb.get("out_indices", (-1,)))} at strides '
            f'{bb_strides}{_neck_text(neck)}){hint}'
        )


def _neck_text(neck: Optional[Dict[str, Any]]) -> str:
    if not isinstance(neck, Mapping):
        return ''
    keys = ('start_level', 'end_level', 'num_outs')
    given = ', '.join(f'{k}={neck[k]}' for k in keys if k in neck)
    return f', {neck["type"]} {given}'.rstrip()
