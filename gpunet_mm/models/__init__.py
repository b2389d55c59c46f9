"""Models: the arch spec and tiers (torch-free) and the torch modules registered into the
mmpretrain and (when installed) mmdet ``MODELS`` registries."""

from .arch_spec import (
    BlockRow,
    GPUNetArch,
    LayerSpec,
    Level,
    PlacedLayer,
    as_arch,
    make_divisible,
)
from .tiers import TIER_NAMES, TIER_SHORT, TIERS, get_tier, list_tiers, tier_index

__all__ = [
    'BlockRow',
    'GPUNetArch',
    'LayerSpec',
    'Level',
    'PlacedLayer',
    'as_arch',
    'make_divisible',
    'TIERS',
    'TIER_NAMES',
    'TIER_SHORT',
    'get_tier',
    'list_tiers',
    'tier_index',
]
