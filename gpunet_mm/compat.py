"""Makes mmengine checkpoints load on torch >= 2.6 without users setting anything.

torch 2.6 switched ``torch.load`` to ``weights_only=True``; upstream mmengine 0.10.7 calls it
without the argument, so ``--resume`` and ``load_from`` of a checkpoint that mmengine itself
wrote fail: its ``message_hub`` holds ``HistoryBuffer`` objects, which pickle their
statistics methods through ``getattr``, a global torch will not allow-list safely. So for
*local files* (the user's own run outputs, which mmengine unpickled fully before torch 2.6)
we try the weights-only load first (numpy scalars and ``HistoryBuffer`` are allow-listed),
then fall back to a full unpickle: silently when the only obstacle is mmengine's own
``HistoryBuffer`` pickling, with a warning naming the global otherwise. Remote checkpoints
keep mmengine's own loaders. The fork (onedl-mmengine) gets the same loader.
"""

from __future__ import annotations

import os.path as osp
import pickle
import re
import warnings
from typing import Any, List

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def _mmengine_safe_globals() -> List[Any]:
    import collections

    import numpy as np
    from mmengine.logging import HistoryBuffer

    allowed: List[Any] = [
        HistoryBuffer,
        collections.OrderedDict,
        collections.defaultdict,
        np.dtype,
        np.ndarray,
    ]
    # numpy moved its pickling helpers between 1.x and 2.x; allow whichever exist
    for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = __import__(mod_name, fromlist=['scalar', '_reconstruct'])
            allowed += [mod.scalar, mod._reconstruct]
        except (ImportError, AttributeError):
            continue
    allowed += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return allowed


if hasattr(torch.serialization, 'add_safe_globals'):
    torch.serialization.add_safe_globals(_mmengine_safe_globals())


#: globals that mmengine's own HistoryBuffer pickling needs (bound statistics methods)
_MMENGINE_PICKLE_GLOBALS = (
    'getattr',
    'bytes',
    '__builtin__.getattr',
    'builtins.getattr',
    'builtins.bytes',
    '__builtin__.bytes',
)


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(e))
        name = found.group(1) if found else 'unknown'
        if name not in _MMENGINE_PICKLE_GLOBALS:
            warnings.warn(
                f'{filename} holds {name}, outside the weights-only allow-list; '
                'loading it fully since it is a local file. Only load checkpoints '
                'you trust.',
                stacklevel=2,
            )
        return torch.load(filename, map_location=map_location, weights_only=False)


CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)
