"""The registries of the NAS building blocks: search spaces, optimisers, test functions.

As in OpenMMLab codebases, each class carries ``@NAS_SPACES.register_module()`` (or
``@NAS_OPTIMIZERS.register_module()``) and is registered when its module is imported;
importing :mod:`gpunet_mm.nas` imports them all. A plugin adds its own space or optimiser
the same way, and ``build_space`` / ``build_optimizer`` then build it from a config.

Torch-free: ``mmengine.registry`` imports no torch, so a search server still needs none.

:func:`lookup` is how the builders resolve a ``type``: only the registry's own names count.
``Registry.get`` would also switch to the current ``default_scope`` and import a dotted
path such as ``'pkg.module.Class'``; a ``type`` read back from a state file or a search
journal must name a registered class, never import a module.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import Registry

# ``locations``: what mmengine imports before its first ``get``. Without one, a registry of a
# scope in ``MODULE2PACKAGE`` (gpunet_mm adds itself there, for ``gpunet_mm::`` config paths)
# tries ``gpunet_mm.utils`` and logs a false "gpunet_mm is not installed" warning.
_LOCATIONS = ['gpunet_mm.nas']
#: search spaces (``BoxSpace``, ``DiscreteSpace``, ``GPUNetSpace``); see ``build_space``
NAS_SPACES = Registry('space', scope='gpunet_mm', locations=_LOCATIONS)
#: ask/tell optimisers (``LaMCTSBO`` and the baselines); see ``build_optimizer``
NAS_OPTIMIZERS = Registry('optimizer', scope='gpunet_mm', locations=_LOCATIONS)
#: minimisation test functions by benchmark name (``'ackley'``, ...), each a
#: :class:`~gpunet_mm.nas.objectives.BenchmarkFunction` carrying its domain
TEST_FUNCTIONS = Registry('test function', scope='gpunet_mm', locations=_LOCATIONS)


def lookup(registry: Registry, name: Any, what: str, also: str = '') -> Any:
    """The module registered in ``registry`` as ``name``, else a ValueError naming both.

    ``what`` starts the message (``'space type'``); ``also`` is appended to the list of
    allowed names (other accepted spellings, such as short method names).
    """
    if not isinstance(name, str) or name not in registry.module_dict:
        allowed = ', '.join(registry.module_dict)
        raise ValueError(f'{what}: got {name!r}; allowed: {allowed}{also}')
    return registry.module_dict[name]


__all__ = ['NAS_OPTIMIZERS', 'NAS_SPACES', 'TEST_FUNCTIONS', 'lookup']
