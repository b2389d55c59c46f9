"""Search spaces (a package, so each space lives in its own module; see :mod:`.gpunet`)."""

from .gpunet import (
    CLASSIFICATION_RESOLUTIONS,
    CLASSIFICATION_STAGES,
    DETECTION_RESOLUTIONS,
    TAIL_CHANNELS,
    BoxSpace,
    Dim,
    DiscreteSpace,
    GPUNetSpace,
    InfeasibleSpaceError,
    SearchSpace,
    StageSpec,
    build_space,
)

__all__ = [
    'SearchSpace',
    'BoxSpace',
    'Dim',
    'DiscreteSpace',
    'StageSpec',
    'GPUNetSpace',
    'CLASSIFICATION_STAGES',
    'CLASSIFICATION_RESOLUTIONS',
    'DETECTION_RESOLUTIONS',
    'TAIL_CHANNELS',
    'InfeasibleSpaceError',
    'build_space',
]
