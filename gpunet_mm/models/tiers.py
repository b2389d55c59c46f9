"""The seven published GPUNet networks, transcribed from the release's layer lists.

Single source of truth for the hub tiers. Row format (see :class:`BlockRow`):
``(type, kernel, out_channels, num, stride, expansion, act, se, stage)``.
Published figures (ImageNet top-1, TensorRT 8 FP16 batch-1 latency) live in ``meta``.
"""

from __future__ import annotations

from typing import Dict, List, Tuple, Union

from .arch_spec import GPUNetArch

R, S = 'relu', 'swish'


def _irb_list(out_channels: int, stage: int, layers, act: str = R, se: bool = False):
    """Rows for a stage whose layers differ in kernel/expansion: (stride, kernel, e)."""
    return [('irb', k, out_channels, 1, s, e, act, se, stage) for s, k, e in layers]


#: what each key of ``meta['latency_ms']`` means (the model hub reads this, not the key text)
PUBLISHED_TARGETS: Dict[str, Dict] = {
    'V100-TRT8-FP16-bs1': dict(
        device='V100', backend='tensorrt', backend_version='8', precision='fp16', batch=1
    ),
    'A100-TRT8-FP16-bs1': dict(
        device='A100', backend='tensorrt', backend_version='8', precision='fp16', batch=1
    ),
    'A100-PyTorch-FP16-bs1': dict(
        device='A100', backend='torch', backend_version=None, precision='fp16', batch=1
    ),
}


def _meta(top1, v100, a100, a100_pt, hub_key, params, flops):
    """Published figures (top-1, latencies, hub key) and this package's classifier counts.

    ``params`` / ``flops`` are this package's 1000-class classifier at the native input, batch
    1 (``flops`` counts multiply-accumulates, as mmengine's ``FlopAnalyzer`` does); both are
    pinned by ``tests/hub/test_shipped.py``, which rebuilds and counts the networks.
    """
    return dict(
        top1=top1,
        latency_ms={
            'V100-TRT8-FP16-bs1': v100,
            'A100-TRT8-FP16-bs1': a100,
            'A100-PyTorch-FP16-bs1': a100_pt,
        },
        hub_key=hub_key,
        source='GPUNet release (CVPR 2022)',
        params=params,
        flops=flops,
    )


GPUNET_0 = GPUNetArch(
    name='GPUNet-0',
    resolution=320,
    family='gpunet',
    tail_channels=(1280,),
    rows=(
        ('conv', 3, 32, 1, 2, 1, S, False, 0),
        ('conv', 3, 32, 2, 1, 1, R, False, 1),
        ('fused', 3, 32, 2, 2, 5, R, False, 2),
        ('fused', 3, 64, 3, 2, 5, R, False, 3),
        ('irb', 3, 256, 3, 2, 5, S, False, 4),
        ('irb', 3, 704, 2, 2, 5, R, True, 6),
    ),
    meta=_meta(78.9, 0.63, 0.46, 1.46, '0.65ms', 11_885_432, 3_331_745_280),
)

GPUNET_1 = GPUNetArch(
    name='GPUNet-1',
    resolution=288,
    family='gpunet',
    tail_channels=(1280,),
    rows=(
        ('conv', 3, 24, 1, 2, 1, S, False, 0),
        ('conv', 3, 24, 1, 1, 1, R, False, 1),
        ('fused', 3, 64, 2, 2, 4, S, False, 2),
        ('fused', 3, 96, 2, 2, 4, S, False, 3),
        ('irb', 3, 160, 1, 2, 2, S, True, 4),
        ('irb', 3, 288, 4, 1, 5, R, False, 5),
        ('irb', 3, 448, 4, 2, 4, R, True, 6),
    ),
    meta=_meta(80.5, 0.82, 0.59, 1.81, '0.85ms', 12_704_192, 3_396_437_504),
)

GPUNET_2 = GPUNetArch(
    name='GPUNet-2',
    resolution=384,
    family='gpunet',
    tail_channels=(1280,),
    rows=(
        ('conv', 3, 32, 1, 2, 1, S, False, 0),
        ('conv', 3, 32, 3, 1, 1, R, False, 1),
        ('fused', 5, 32, 1, 2, 6, S, True, 2),
        ('fused', 3, 112, 3, 2, 3, S, False, 3),
        ('irb', 3, 144, 6, 2, 6, S, False, 4),
        ('irb', 5, 160, 4, 1, 3, R, False, 5),
        ('irb', 3, 224, 8, 2, 3, S, True, 6),
        ('irb', 5, 832, 7, 1, 2, R, False, 7),
    ),
    meta=_meta(82.2, 1.68, 1.25, 4.03, '1.75ms', 25_798_704, 8_761_812_992),
)

GPUNET_P0 = GPUNetArch(
    name='GPUNet-P0',
    resolution=224,
    family='gpunet',
    tail_channels=(1984,),
    rows=(
        ('conv', 3, 32, 1, 2, 1, R, False, 0),
        ('conv', 3, 32, 2, 1, 1, R, False, 1),
        ('conv', 3, 64, 1, 2, 1, R, False, 2),
        *_irb_list(96, 3, [(2, 3, 8), (1, 3, 7.67), (1, 3, 7.67)]),
        *_irb_list(256, 4, [(2, 3, 7.67), (1, 5, 4.25), (1, 3, 4.75)]),
        *_irb_list(704, 5, [(2, 3, 8), (1, 5, 3.82), (1, 3, 3.36), (1, 3, 2.55)]),
        *_irb_list(704, 6, [(2, 3, 5.73)]),
    ),
    meta=_meta(80.3, 0.63, 0.45, 1.31, '0.5ms-D', 22_815_080, 1_889_051_072),
)

GPUNET_P1 = GPUNetArch(
    name='GPUNet-P1',
    resolution=224,
    family='gpunet',
    tail_channels=(1984,),
    rows=(
        ('conv', 3, 32, 1, 2, 1, R, False, 0),
        ('conv', 3, 32, 2, 1, 1, R, False, 1),
        ('conv', 5, 64, 1, 2, 1, R, False, 2),
        *_irb_list(64, 2, [(1, 3, 8), (1, 3, 8)]),
        *_irb_list(96, 3, [(2, 5, 8), (1, 5, 8)]),
        *_irb_list(256, 4, [(2, 5, 8), (1, 5, 7.5), (1, 3, 7.88)]),
        *_irb_list(704, 5, [(2, 5, 7.88), (1, 5, 8), (1, 3, 7.41), (1, 5, 8)]),
        *_irb_list(704, 6, [(2, 5, 7.95)]),
    ),
    meta=_meta(81.1, 0.96, 0.61, 1.64, '0.8ms-D', 39_905_672, 3_275_091_392),
)

GPUNET_D1 = GPUNetArch(
    name='GPUNet-D1',
    resolution=456,
    family='distilled',
    tail_channels=(1152, 1984),
    rows=(
        ('conv', 3, 33, 1, 2, 1, R, False, 0),
        *_irb_list(33, 0, [(1, 3, 1)]),
        *_irb_list(44, 1, [(2, 3, 3), (1, 5, 4), (1, 3, 3)]),
        *_irb_list(67, 2, [(2, 5, 4), (1, 5, 4), (1, 3, 6), (1, 5, 3)]),
        *_irb_list(134, 3, [(2, 7, 6), (1, 5, 6), (1, 3, 3), (1, 5, 4)]),
        *_irb_list(190, 3, [(1, 3, 6), (1, 5, 6), (1, 7, 6), (1, 3, 4)]),
        *_irb_list(268, 4, [(2, 3, 6), (1, 3, 6), (1, 5, 6), (1, 3, 3), (1, 3, 3), (1, 3, 3)]),
    ),
    meta=_meta(82.5, 1.24, 0.94, 2.44, '1.25ms-D', 10_589_859, 4_387_707_895),
)

GPUNET_D2 = GPUNetArch(
    name='GPUNet-D2',
    resolution=528,
    family='distilled',
    tail_channels=(1152, 1984),
    rows=(
        ('conv', 3, 48, 1, 2, 1, R, False, 0),  # the release's "large" head: 3 convs
        ('conv', 3, 48, 2, 1, 1, R, False, 0),
        *_irb_list(48, 0, [(1, 3, 1)]),
        *_irb_list(64, 1, [(2, 3, 3), (1, 5, 4), (1, 3, 3)]),
        *_irb_list(96, 2, [(2, 5, 4), (1, 5, 4), (1, 3, 6), (1, 5, 3)]),
        *_irb_list(192, 3, [(2, 7, 6), (1, 5, 6), (1, 3, 3), (1, 5, 4), (1, 5, 4)]),
        *_irb_list(272, 3, [(1, 3, 6), (1, 5, 6), (1, 7, 6), (1, 5, 6), (1, 3, 4)]),
        *_irb_list(
            384, 4, [(2, 3, 6), (1, 3, 6), (1, 5, 6), (1, 3, 3), (1, 3, 3), (1, 3, 3), (1, 3, 3)]
        ),
    ),
    meta=_meta(83.6, 2.17, 1.40, 3.06, '2.25ms-D', 19_036_728, 15_953_200_096),
)

#: tier number -> architecture (0-2 as in the paper, then P0, P1, D1, D2).
TIERS: Tuple[GPUNetArch, ...] = (
    GPUNET_0,
    GPUNET_1,
    GPUNET_2,
    GPUNET_P0,
    GPUNET_P1,
    GPUNET_D1,
    GPUNET_D2,
)
TIER_NAMES: Tuple[str, ...] = tuple(a.name for a in TIERS)
#: short names used in config file names: gpunet-<short>
TIER_SHORT: Tuple[str, ...] = ('0', '1', '2', 'p0', 'p1', 'd1', 'd2')


def _aliases() -> Dict[str, int]:
    out: Dict[str, int] = {}
    for i, a in enumerate(TIERS):
        for key in (
            a.name,
            a.name.replace('GPUNet-', ''),
            f'gpunet-{TIER_SHORT[i]}',
            f'gpunet_{TIER_SHORT[i]}',
            TIER_SHORT[i],
            a.meta['hub_key'],
            str(i),
        ):
            out[key.lower()] = i
    return out


_ALIASES = _aliases()


def tier_index(tier: Union[int, str]) -> int:
    """Resolve a tier number (0-6) or a release name ('GPUNet-D1', 'd1', '1.25ms-D')."""
    if isinstance(tier, bool):
        raise ValueError(f'tier: got {tier!r}; allowed: 0-{len(TIERS) - 1} or {TIER_NAMES}')
    if isinstance(tier, int):
        if 0 <= tier < len(TIERS):
            return tier
    elif isinstance(tier, str) and tier.strip().lower() in _ALIASES:
        return _ALIASES[tier.strip().lower()]
    raise ValueError(
        f'tier: got {tier!r}; allowed: integers 0-{len(TIERS) - 1} or the '
        f'release names {", ".join(TIER_NAMES)}'
    )


def get_tier(tier: Union[int, str]) -> GPUNetArch:
    return TIERS[tier_index(tier)]


def list_tiers() -> List[Dict]:
    return [
        dict(
            tier=i,
            name=a.name,
            short=TIER_SHORT[i],
            resolution=a.resolution,
            family=a.family,
            **{k: v for k, v in a.meta.items() if k != 'source'},
        )
        for i, a in enumerate(TIERS)
    ]
