"""Key mapping between the GPUNet release (NGC) checkpoints and this package's classifier.

The release keeps every module in one ``nn.Sequential`` named ``network`` whose children are
named after a running counter (``head: 2``, ``stage: 4 layer10``, `` layer16`` for the tail;
``head:``, ``stage: 0 irb3``, ``tail:`` for the distilled family). Units are matched to the
arch's layers *by order*, so the exact counter offsets do not matter; within a unit the
parameter names are mapped explicitly per block type.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch

from .arch_spec import GPUNetArch, LayerSpec

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
_UNIT = re.compile(
    r'^(?P<unit>head:\s*\d*|tail:|stage:\s*\d+\s+(?:layer|irb|fused_irb)\d+|'
    r'\s*layer\d+)\.(?P<rest>.+)$'
)


def _conv_bn(src_conv: str, src_bn: str, dst: str) -> List[Tuple[str, str]]:
    pairs = [(f'{src_conv}.weight', f'{dst}.conv.weight')]
    pairs += [(f'{src_bn}.{k}', f'{dst}.bn.{k}') for k in BN_KEYS]
    return pairs


def _se(layer: LayerSpec, dst: str) -> List[Tuple[str, str]]:
    if not layer.se_channels:
        return []
    return [(f'se.conv_reduce.{k}', f'{dst}.se.conv1.conv.{k}') for k in ('weight', 'bias')] + [
        (f'se.conv_expand.{k}', f'{dst}.se.conv2.conv.{k}') for k in ('weight', 'bias')
    ]


def _layer_pairs(layer: LayerSpec, family: str, dst: str) -> List[Tuple[str, str]]:
    """(release key inside the unit, mm key) pairs for one block."""
    if family == 'gpunet':
        if layer.type == 'conv':
            return _conv_bn('conv', 'bn1', dst)
        if layer.type == 'irb':
            return (
                _conv_bn('conv_pw', 'bn1', f'{dst}.expand_conv')
                + _conv_bn('conv_dw', 'bn2', f'{dst}.depthwise_conv')
                + _se(layer, dst)
                + _conv_bn('conv_pwl', 'bn3', f'{dst}.linear_conv')
            )
        return (
            _conv_bn('conv_exp', 'bn1', f'{dst}.conv1')
            + _se(layer, dst)
            + _conv_bn('conv_pwl', 'bn2', f'{dst}.conv2')
        )
    if layer.type == 'irb':
        return (
            _conv_bn('body.0', 'body.1', f'{dst}.expand_conv')
            + _conv_bn('body.3', 'body.4', f'{dst}.depthwise_conv')
            + _conv_bn('body.6', 'body.7', f'{dst}.linear_conv')
        )
    if layer.type == 'fused':
        return _conv_bn('body.0', 'body.1', f'{dst}.conv1') + _conv_bn(
            'body.3', 'body.4', f'{dst}.conv2'
        )
    raise ValueError(
        f"distilled release checkpoints have no stand-alone '{layer.type}' layers outside the head"
    )


def _mm_layer_prefixes(arch: GPUNetArch, backbone_prefix: str) -> List[str]:
    """The backbone key prefix of every layer, in network order."""
    return [f'{backbone_prefix}layers.{ly.level}.{ly.position}' for ly in arch.placed_layers()]


def _num_head_convs(arch: GPUNetArch) -> int:
    """Leading stride-1 convs after the stem that the release folds into its head unit."""
    layers = arch.layers()
    if arch.family == 'gpunet':
        return 1
    n = 1
    while n < len(layers) and layers[n].type == 'conv':
        n += 1
    return n


def canonical_unit_names(arch: GPUNetArch) -> List[str]:
    """Release unit names the release builder would give this arch (head, layers, tail)."""
    layers = arch.layers()
    n_head = _num_head_convs(arch)
    if arch.family == 'gpunet':
        names = ['head: 2'] + [f'stage: {ly.stage} layer{i + 3}' for i, ly in enumerate(layers[1:])]
        names.append(f' layer{len(layers) + 2}')
        return names
    names = ['head:']
    for i, ly in enumerate(layers[n_head:]):
        kind = 'irb' if ly.type == 'irb' else 'fused_irb'
        names.append(f'stage: {ly.stage} {kind}{i + 3}')
    return names + ['tail:']


def key_pairs(
    arch: GPUNetArch,
    unit_names: List[str],
    backbone_prefix: str = 'backbone.',
    head_prefix: str = 'head.',
) -> List[Tuple[str, str, str]]:
    """(release key, mm key, transform) triples for a whole classifier."""
    layers = arch.layers()
    mm = _mm_layer_prefixes(arch, backbone_prefix)
    n_head = _num_head_convs(arch)
    expected = 1 + (len(layers) - n_head) + 1
    if len(unit_names) != expected:
        raise ValueError(
            f'release checkpoint has {len(unit_names)} units (head, layers, tail) '
            f'but {arch.name} needs {expected}; is it the right tier?'
        )
    out: List[Tuple[str, str, str]] = []
    head_unit, *layer_units, tail_unit = unit_names
    for i in range(n_head):
        out += [
            (f'network.{head_unit}.{s}', d, '')
            for s, d in _conv_bn(f'net.{3 * i}', f'net.{3 * i + 1}', mm[i])
        ]
    for unit, layer, dst in zip(layer_units, layers[n_head:], mm[n_head:]):
        out += [(f'network.{unit}.{s}', d, '') for s, d in _layer_pairs(layer, arch.family, dst)]
    tail_dst = f'{backbone_prefix}layers.{len(arch.levels())}'
    t = f'network.{tail_unit}.net'
    out += [(f'{t}.0.weight', f'{tail_dst}.conv.weight', '')]
    out += [(f'{t}.1.{k}', f'{tail_dst}.bn.{k}', '') for k in BN_KEYS]
    fc = 6 if arch.family == 'gpunet' else 8
    if arch.family == 'distilled':
        out.append((f'{t}.4.weight', f'{head_prefix}hidden.0.weight', 'squeeze'))
    out += [(f'{t}.{fc}.{k}', f'{head_prefix}fc.{k}', '') for k in ('weight', 'bias')]
    return out


def extract_state_dict(ckpt: Mapping, use_ema: bool = True) -> Dict[str, torch.Tensor]:
    """The weights inside a release checkpoint file (EMA copy first when present)."""
    for key in (
        ('state_dict_ema', 'state_dict', 'model')
        if use_ema
        else ('state_dict', 'model', 'state_dict_ema')
    ):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
            break
    return {re.sub(r'^module\.', '', k): v for k, v in ckpt.items()}


def unit_names_in(state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    seen: Dict[str, None] = {}
    for key in state_dict:
        if not key.startswith('network.'):
            continue
        m = _UNIT.match(key[len('network.') :])
        if m is None:
            raise ValueError(
                f'unrecognised release key {key!r}: expected network.<unit>.<param>'
                " with <unit> like 'head: 2', 'stage: 4 layer10', ' layer16'"
            )
        seen.setdefault(m.group('unit'))

    def order(name: str) -> Tuple[int, int]:
        if name.startswith('head'):
            return (0, 0)
        if name.startswith('tail'):
            return (2, 0)
        num = re.findall(r'\d+', name)
        if name.strip().startswith('layer') and not name.startswith('stage'):
            return (2, int(num[-1]))  # the non-distilled tail: ' layer<N>'
        return (1, int(num[-1]))

    return sorted(seen, key=order)


def release_to_mm(
    state_dict: Mapping[str, torch.Tensor],
    arch: GPUNetArch,
    backbone_prefix: str = 'backbone.',
    head_prefix: str = 'head.',
) -> OrderedDict[str, torch.Tensor]:
    """Map a release state dict (already extracted) onto ``ImageClassifier`` keys."""
    pairs = key_pairs(arch, unit_names_in(state_dict), backbone_prefix, head_prefix)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    missing = []
    for src, dst, transform in pairs:
        if src not in state_dict:
            if not src.endswith('num_batches_tracked'):
                missing.append(src)
            continue
        v = state_dict[src]
        out[dst] = v.reshape(v.shape[0], -1) if transform == 'squeeze' else v
    if missing:
        raise KeyError(
            f'{len(missing)} expected release keys are missing for {arch.name}, e.g. {missing[:3]}'
        )
    unused = set(state_dict) - {s for s, _, _ in pairs}
    if unused:
        raise KeyError(
            f'{len(unused)} release keys were not mapped for {arch.name}, e.g. '
            f'{sorted(unused)[:3]}; is it the right tier?'
        )
    check_shapes(out, arch, backbone_prefix, head_prefix)
    return out


def check_shapes(
    state_dict: Mapping[str, torch.Tensor],
    arch: GPUNetArch,
    backbone_prefix: str = 'backbone.',
    head_prefix: str = 'head.',
) -> None:
    """Every tensor must have the shape ``arch``'s classifier gives it.

    Keys can match while shapes do not (a release file of another width, a hand-edited
    file); loading would then fail later, or with ``strict=False`` silently keep random
    weights. The number of classes is taken from the checkpoint's own ``fc``.
    """
    from .classifiers import build_release_classifier

    fc = state_dict.get(f'{head_prefix}fc.weight')
    if fc is not None and (not isinstance(fc, torch.Tensor) or fc.dim() != 2):
        raise ValueError(f'{head_prefix}fc.weight: got {getattr(fc, "shape", fc)}; allowed: 2-D')
    num_classes = int(fc.shape[0]) if fc is not None else 1000
    model = build_release_classifier(arch=arch, num_classes=num_classes)
    ref = model.state_dict()
    wrong = []
    for key, value in state_dict.items():
        mm_key = key
        if key.startswith(backbone_prefix):
            mm_key = 'backbone.' + key[len(backbone_prefix) :]
        elif key.startswith(head_prefix):
            mm_key = 'head.' + key[len(head_prefix) :]
        if mm_key not in ref:
            continue
        if not isinstance(value, torch.Tensor):
            wrong.append(f'{key}: a {type(value).__name__}, not a tensor')
        elif tuple(value.shape) != tuple(ref[mm_key].shape):
            wrong.append(f'{key}: got {tuple(value.shape)}, needs {tuple(ref[mm_key].shape)}')
    if wrong:
        raise ValueError(
            f'{len(wrong)} tensors do not fit {arch.name}, e.g. {wrong[:3]}; is it the right tier?'
        )


def mm_to_release(
    state_dict: Mapping[str, torch.Tensor],
    arch: GPUNetArch,
    backbone_prefix: str = 'backbone.',
    head_prefix: str = 'head.',
) -> OrderedDict[str, torch.Tensor]:
    """Inverse of :func:`release_to_mm` (release naming as the release builder writes it)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for src, dst, transform in key_pairs(
        arch, canonical_unit_names(arch), backbone_prefix, head_prefix
    ):
        if dst in state_dict:
            v = state_dict[dst]
            out[src] = v[:, :, None, None] if transform == 'squeeze' else v
    return out
