"""Deprecated name of :mod:`gpunet_mm.nas.objectives` and :mod:`gpunet_mm.nas.latency_proxy`
(split and renamed in issue 19: the test functions and surrogate objectives apart from the
production latency proxy). The old imports keep working, with a ``DeprecationWarning``
naming where each name now lives. Torch-free, as both new modules are."""

from ..deprecated_alias import module_alias

__getattr__ = module_alias(
    'gpunet_mm.nas.functions', ['gpunet_mm.nas.latency_proxy', 'gpunet_mm.nas.objectives']
)
