"""Makes mmengine checkpoints load on torch >= 2.6 without users setting anything.

torch 2.6 switched ``torch.load`` to ``weights_only=True``; upstream mmengine 0.10.7 calls it
without the argument, so ``--resume`` and ``load_from`` of a checkpoint that mmengine itself
wrote fail (its ``message_hub`` holds ``HistoryBuffer`` objects and numpy scalars). We keep
the safe loader and allow-list exactly the types mmengine writes; a checkpoint holding
anything else falls back to a full unpickle *only for local files*, with a warning that
names the type, because those are the user's own run outputs. The maintained fork
(onedl-mmengine) gets the same loader, which behaves identically there.
"""
from __future__ import annotations

import os.path as osp
import pickle
import warnings
from typing import Any, List

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def _mmengine_safe_globals() -> List[Any]:
    import collections

    import numpy as np
    from mmengine.logging import HistoryBuffer

    allowed: List[Any] = [HistoryBuffer, collections.OrderedDict, collections.defaultdict,
                          np.dtype, np.ndarray]
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


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        warnings.warn(f'{filename} holds objects outside the weights-only allow-list '
                      f'({str(e).splitlines()[0][:200]}); loading it fully since it is a '
                      'local file. Only load checkpoints you trust.', stacklevel=2)
        return torch.load(filename, map_location=map_location, weights_only=False)


CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)
