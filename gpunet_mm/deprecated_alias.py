"""Old module names kept importable after a rename, with a ``DeprecationWarning``.

Issue 19 renamed modules after what they hold (``compat`` -> ``safe_checkpoint``,
``analysis`` -> ``complexity``, ``nas.functions`` -> ``nas.objectives`` and
``nas.latency_proxy``). Users' scripts import the old names, so each old module stays as a
two-line stub whose module-level ``__getattr__`` (PEP 562) is built here: it answers a name
from the new module(s) and warns with the place to import it from. The new modules are
imported on first attribute access, so the stub costs nothing to import.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Mapping, Optional, Sequence


def module_alias(
    old: str, new: Sequence[str], renamed: Optional[Mapping[str, str]] = None
) -> Callable[[str], Any]:
    """The ``__getattr__`` of the deprecated module ``old``.

    Args:
        old: the old module's dotted name (for the warning).
        new: the modules that now hold its names, searched in order (put the owner of a
            name first: a module that imports a name holds it too).
        renamed: old attribute name -> ``'module:name'`` for names that were renamed too.

    A name none of them holds raises ``AttributeError`` (no warning), as a module does.
    """
    renamed = dict(renamed or {})

    def __getattr__(name: str) -> Any:  # noqa: N807  (PEP 562 module attribute hook)
        if name in renamed:
            module, _, attr = renamed[name].partition(':')
            candidates = [(module, attr)]
        else:
            candidates = [(module, name) for module in new]
        for module, attr in candidates:
            value = getattr(importlib.import_module(module), attr, _MISSING)
            if value is not _MISSING:
                warnings.warn(
                    f'{old}.{name} is deprecated: import {attr} from {module}',
                    DeprecationWarning,
                    stacklevel=2,
                )
                return value
        raise AttributeError(f'module {old!r} has no attribute {name!r}')

    return __getattr__


_MISSING = object()

__all__ = ['module_alias']
