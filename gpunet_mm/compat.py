"""Deprecated name of :mod:`gpunet_mm.safe_checkpoint` (renamed in issue 19 after what it
holds: the safe checkpoint loader). ``gpunet_mm.compat.trusted_checkpoints`` was documented,
so the old import keeps working, with a ``DeprecationWarning`` naming the new module."""

import warnings
from typing import Any

from . import safe_checkpoint


def __getattr__(name: str) -> Any:
    value = getattr(safe_checkpoint, name)  # AttributeError for names it never had
    warnings.warn(
        f'gpunet_mm.compat.{name} is deprecated: import it from gpunet_mm.safe_checkpoint',
        DeprecationWarning,
        stacklevel=2,
    )
    return value
