"""Deprecated name of :mod:`gpunet_mm.complexity` (renamed in issue 19 after what it holds:
parameter and FLOP counts). Users' scripts import ``gpunet_mm.analysis``, so the old names
keep working, with a ``DeprecationWarning`` naming where each now lives;
``build_gpunet_classifier`` became
:func:`gpunet_mm.models.classifiers.build_release_classifier` (same arguments)."""

from .deprecated_alias import module_alias

__getattr__ = module_alias(
    'gpunet_mm.analysis',
    ['gpunet_mm.complexity'],
    renamed={'build_gpunet_classifier': 'gpunet_mm.models.classifiers:build_release_classifier'},
)
