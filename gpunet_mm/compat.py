"""Deprecated name of :mod:`gpunet_mm.safe_checkpoint` (renamed in issue 19 after what it
holds: the safe checkpoint loader). ``gpunet_mm.compat.trusted_checkpoints`` was documented,
so the old import keeps working, with a ``DeprecationWarning`` naming the new module."""

from .deprecated_alias import module_alias

__getattr__ = module_alias('gpunet_mm.compat', ['gpunet_mm.safe_checkpoint'])
