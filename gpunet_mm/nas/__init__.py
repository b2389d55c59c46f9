"""Neural architecture search: the GPUNet space and ask/tell optimisers (torch-free).

Build everything from mmengine-style dicts::

    space = build_space(dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384]))
    opt = build_optimizer(dict(type='LaMCTSBO', seed=0), space,
                          constraint_fn=latency_fn, budget=1.0, minimize=False)
    trials = opt.ask(8)          # one per free worker
    opt.tell(trials[3], 81.2, cost=0.93)   # any order; measured latency optional
    opt.save('search_state.json')          # atomic; opt.load(...) resumes exactly

The trials live in the optimiser's store (``opt.store``, a :class:`MemoryTrialStore` unless
one is passed as ``store=``); ``opt.trials`` is a read-only view of it.

Spaces and optimisers are classes registered in the mmengine registries of
:mod:`gpunet_mm.nas.registry` (``NAS_SPACES``, ``NAS_OPTIMIZERS``); ``type`` names one.
"""

from typing import Any, Mapping, Union

from .base import STATUSES, Optimizer, Trial
from .baselines import (
    NevergradSearch,
    OptunaGPSearch,
    RandomSearch,
    RegularizedEvolution,
    TPESearch,
)
from .lamcts import LaMCTSBO
from .registry import NAS_OPTIMIZERS, NAS_SPACES, lookup
from .space import (
    CLASSIFICATION_RESOLUTIONS,
    CLASSIFICATION_STAGES,
    DETECTION_RESOLUTIONS,
    BoxSpace,
    Dim,
    DiscreteSpace,
    GPUNetSpace,
    InfeasibleSpaceError,
    SearchSpace,
    StageSpec,
    build_space,
)
from .store import MemoryTrialStore, TrialsView

#: short names for the registered optimisers (tools/benchmark_search.py, search configs)
METHODS = {
    'lamcts': 'LaMCTSBO',
    'random': 'RandomSearch',
    'evolution': 'RegularizedEvolution',
    'tpe': 'TPESearch',
    'gp': 'OptunaGPSearch',
    'ngopt': 'NevergradSearch',
}


def build_optimizer(
    cfg: Union[str, Mapping[str, Any]], space: Union[SearchSpace, Mapping[str, Any]], **kwargs: Any
) -> Optimizer:
    """Build an optimiser from ``dict(type=..., **options)`` or a short method name.

    ``type`` is a class registered in ``NAS_OPTIMIZERS`` or a key of :data:`METHODS`;
    ``kwargs`` (run-time settings such as ``constraint_fn``) override the config's.
    """
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise ValueError(f'optimizer config: got {cfg!r}; allowed: a dict with a "type" key')
    cfg = dict(cfg)
    given = cfg.pop('type')
    kind = METHODS.get(given, given) if isinstance(given, str) else given
    cls = lookup(NAS_OPTIMIZERS, kind, 'optimizer type', f' or {", ".join(METHODS)}')
    from ..schema import check_arguments

    check_arguments(cls, cfg, 'search_optimizer')  # the class's signature is its schema
    return cls(build_space(space), **{**cfg, **kwargs})


__all__ = [
    'MemoryTrialStore',
    'TrialsView',
    'SearchSpace',
    'BoxSpace',
    'Dim',
    'DiscreteSpace',
    'GPUNetSpace',
    'StageSpec',
    'CLASSIFICATION_STAGES',
    'CLASSIFICATION_RESOLUTIONS',
    'DETECTION_RESOLUTIONS',
    'InfeasibleSpaceError',
    'build_space',
    'Trial',
    'Optimizer',
    'STATUSES',
    'LaMCTSBO',
    'RandomSearch',
    'RegularizedEvolution',
    'TPESearch',
    'OptunaGPSearch',
    'NevergradSearch',
    'NAS_OPTIMIZERS',
    'NAS_SPACES',
    'METHODS',
    'build_optimizer',
]
