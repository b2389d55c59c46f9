"""Safe checkpoint loading: a downloaded ``.pth`` runs no code unless the user opts in.

A ``.pth`` file is a pickle, and unpickling can call any function (``os.system`` included).
torch >= 2.6 therefore loads with ``weights_only=True``: tensors, containers and an
allow-list of globals. Upstream mmengine 0.10.7 calls ``torch.load`` without the argument,
and its own checkpoints hold a few globals outside torch's default allow-list: numpy scalars
and arrays (``meta``, ``message_hub``) and ``HistoryBuffer``, which pickles its statistics
methods as ``getattr(HistoryBuffer, 'mean')``. ``getattr`` is a universal gadget (it reaches
``os.system`` from any function's ``__globals__``), so it is never allow-listed as such;
instead ``builtins.getattr`` resolves to :func:`_history_buffer_getattr`, which only looks up
``HistoryBuffer``'s registered statistics methods.

This module registers a loader for local files into mmengine's ``CheckpointLoader`` (so
``load_from``, ``--resume``, ``init_cfg=dict(type='Pretrained')`` and ``load_checkpoint`` all
use it) that loads weights-only with exactly that allow-list. Anything else is refused with
:class:`UntrustedCheckpointError`, naming the global and the opt-in: ``trust_checkpoint=True``
in the config (``--trust-checkpoint`` on the tools, :func:`trusted_checkpoints` in Python).
The opt-in is explicit per run; no environment variable turns it on. Truncated or empty
files get :class:`CorruptCheckpointError` naming the file. The fork (onedl-mmengine) gets
the same loader.

Every other scheme mmengine loads (``https://``/``http://`` through
``torch.hub.load_state_dict_from_url(weights_only=False)``, ``torchvision://``,
``modelzoo://``, ``open-mmlab://``, ``mmcls://``, ``pavi://``, the ``s3://``/``petrel://``
file backends, and any scheme registered later) keeps mmengine's own code for finding and
downloading the file, but :meth:`CheckpointLoader.load_checkpoint` runs it inside
:func:`weights_only_unpickling`: while it runs, every ``torch.load`` *in that thread* is
the same weights-only load with the same allow-list and opt-in, whatever ``weights_only``
the caller passed. Other threads' ``torch.load`` calls are passed through untouched.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os.path as osp
import pickle
import re
import threading
import zipfile
from typing import Any, Iterator, List, Optional, Tuple

import torch
from mmengine.runner.checkpoint import CheckpointLoader

#: what users set to load a checkpoint that needs full unpickling (their own, old files)
OPT_IN_HINT = (
    'only if you trust the file: set trust_checkpoint=True in the config '
    '(tools: --trust-checkpoint; Python: with gpunet_mm.safe_checkpoint.trusted_checkpoints(): ...)'
)


class UntrustedCheckpointError(pickle.UnpicklingError):
    """The checkpoint needs a global outside the weights-only allow-list."""


class CorruptCheckpointError(RuntimeError):
    """The checkpoint file is empty, truncated or not a torch checkpoint at all."""


_trust = False


def set_trust_checkpoint(enabled: bool) -> None:
    """Allow (or stop allowing) full unpickling of local checkpoints in this process."""
    global _trust
    _trust = bool(enabled)


def trust_checkpoint_enabled() -> bool:
    return _trust


@contextlib.contextmanager
def trusted_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Within the block, checkpoints the allow-list refuses are unpickled fully."""
    before = _trust
    set_trust_checkpoint(enabled)
    try:
        yield
    finally:
        set_trust_checkpoint(before)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to what ``HistoryBuffer.__getstate__`` pickles."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and name in _statistics_names():
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr on {obj!r}, {name!r} '
        "(only HistoryBuffer's statistics methods are allowed)"
    )


def _statistics_names() -> set:
    from mmengine.logging import HistoryBuffer

    names = set(HistoryBuffer._statistics_methods) | {'min', 'max', 'current', 'mean'}
    return {n for n in names if callable(getattr(HistoryBuffer, n, None))}


@functools.cache
def mmengine_safe_globals() -> Tuple[Any, ...]:
    """The globals an mmengine checkpoint holds beyond torch's default allow-list."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    allowed: List[Any] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.dtype,
        np.ndarray,
    ]
    # numpy 2 moved its pickling helpers to numpy._core; files written under numpy 1 name
    # numpy.core (a deprecated shim now), so both names map to the functions that exist
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    for fn in ('scalar', '_reconstruct'):
        for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            allowed.append((getattr(multiarray, fn), f'{mod_name}.{fn}'))
    for t in ('float64', 'float32', 'float16', 'int64', 'int32', 'uint8', 'bool'):
        cls = type(np.dtype(t))
        allowed.append((cls, f'{cls.__module__}.{cls.__qualname__}'))
    return tuple(allowed)


def _blocked_global(err: BaseException) -> str:
    found = re.search(r'GLOBAL (\S+)', str(err))
    if found:
        return found.group(1)
    found = re.search(r'unrecognized function (.+?)(?: which|$)', str(err), re.M)
    return found.group(1).strip() if found else 'unknown (see the torch message below)'


def checkpoint_problem(filename: str) -> Optional[str]:
    """Why ``filename`` cannot be a whole checkpoint (empty, truncated zip), else None.

    Cheap (no unpickling): torch has saved zip archives since 1.6, and a zip whose central
    directory or member CRCs do not check out was cut short by an interrupted save or copy.
    Legacy (non-zip) files are not judged here.
    """
    if not osp.isfile(filename):
        return 'no such file'
    if osp.getsize(filename) == 0:
        return 'empty (0 bytes): an interrupted save or copy?'
    if not _is_zip(filename):
        return None
    try:
        with zipfile.ZipFile(filename) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f'truncated or corrupt zip archive ({e}): an interrupted save or copy?'
    if bad is not None:
        return f'corrupt member {bad!r} in its zip archive: an interrupted save or copy?'
    return None


def _is_zip(filename: str) -> bool:
    with open(filename, 'rb') as f:
        return f.read(4) == b'PK\x03\x04'


def _is_corrupt(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, EOFError) or any(
        s in text
        for s in (
            'PytorchStreamReader',
            'zip archive',
            'Ran out of input',
            'invalid load key',
            'unpickling stack underflow',
            'pickle data was truncated',
        )
    )


def _torch_reason(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if 'GLOBAL' in ln or 'unrecognized function' in ln:
            return ln
    return lines[0] if lines else type(err).__name__


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint weights-only (mmengine's globals allowed); see the module doc.

    Raises:
        FileNotFoundError: no such file.
        CorruptCheckpointError: empty, truncated or not a checkpoint; names the file.
        UntrustedCheckpointError: the file needs a global outside the allow-list and the
            run did not opt in; names the global, the file and the opt-in.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    problem = checkpoint_problem(filename)
    if problem is not None:
        raise CorruptCheckpointError(f'checkpoint {_describe(filename)} is {problem}')
    return _load_weights_only(filename, map_location)


def _describe(f: Any) -> str:
    """The checkpoint as the user named it: the URL or scheme path being loaded (with the
    local file it was cached to), else the file name."""
    where = f if isinstance(f, (str, bytes)) or hasattr(f, '__fspath__') else None
    name = getattr(f, 'name', None) if where is None else str(where)
    source = getattr(_guard, 'source', None)
    if source and (name is None or str(name) != source):
        return f'{source} (read from {name})' if name else source
    return str(name) if name is not None else f'<{type(f).__name__}>'


def _load_weights_only(f: Any, map_location: Any = None) -> Any:
    """``torch.load`` of a path or file object, weights-only with mmengine's globals; a
    full unpickle only under the run's explicit opt-in (the same for every scheme)."""
    is_path = isinstance(f, (str, bytes)) or hasattr(f, '__fspath__')
    start = None if is_path else f.tell()
    try:
        with torch.serialization.safe_globals(list(mmengine_safe_globals())):
            return _torch_load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if _is_corrupt(e):
            raise CorruptCheckpointError(
                f'checkpoint {_describe(f)} is truncated or not a torch checkpoint: {e}'
            ) from e
        if not _trust:
            name = _blocked_global(e)
            raise UntrustedCheckpointError(
                f'refusing to load checkpoint {_describe(f)}: it needs the global {name}, '
                'which is outside the weights-only allow-list (tensors, numpy arrays and '
                "scalars, mmengine's HistoryBuffer); unpickling it could run arbitrary code. "
                f'Load it {OPT_IN_HINT}. torch said: {_torch_reason(e)}'
            ) from e
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as e:
        corrupt = _is_corrupt(e)
        if is_path:
            corrupt = corrupt or checkpoint_problem(str(f)) is not None or not _is_zip(str(f))
        if corrupt:
            raise CorruptCheckpointError(
                f'checkpoint {_describe(f)} is truncated or not a torch checkpoint: {e}'
            ) from e
        raise
    # the user opted in for this run: a full unpickle, as mmengine did before torch 2.6
    if start is not None:
        f.seek(start)
    return _torch_load(f, map_location=map_location, weights_only=False)


# ---------------------------------------------------------------- every other scheme
#: the real ``torch.load``; :func:`weights_only_unpickling` swaps the module attribute
_torch_load = torch.load
_guard = threading.local()
_patch_lock = threading.Lock()
_patch_users = 0


def _guarded_torch_load(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
    """``torch.load`` while a guard is installed: weights-only in guarded threads (the
    caller's ``weights_only``/``pickle_module`` are overruled), untouched elsewhere."""
    if not getattr(_guard, 'depth', 0):
        return _torch_load(f, map_location, *args, **kwargs)
    if isinstance(f, (str, bytes)) or hasattr(f, '__fspath__'):
        problem = checkpoint_problem(str(f))
        if problem is not None and problem != 'no such file':
            raise CorruptCheckpointError(f'checkpoint {_describe(f)} is {problem}')
    elif not hasattr(f, 'seek'):  # a stream: read it once so that the opt-in can re-read
        f = io.BytesIO(f.read())
    return _load_weights_only(f, map_location)


@contextlib.contextmanager
def weights_only_unpickling(source: Optional[str] = None) -> Iterator[None]:
    """Within the block, every ``torch.load`` in this thread is :func:`_load_weights_only`.

    ``source`` (the URL or scheme path) is what errors name. mmengine's remote loaders
    (``torch.hub.load_state_dict_from_url(weights_only=False)``, ``torch.load`` of a file
    backend's bytes) run inside it, so a URL gets exactly the local files' rules.
    """
    global _patch_users
    with _patch_lock:
        if _patch_users == 0:
            torch.load = _guarded_torch_load
        _patch_users += 1
    depth, before = getattr(_guard, 'depth', 0), getattr(_guard, 'source', None)
    _guard.depth, _guard.source = depth + 1, source if source is not None else before
    try:
        yield
    finally:
        _guard.depth, _guard.source = depth, before
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                torch.load = _torch_load


#: mmengine's own method, kept once (a re-import must not wrap the wrapper)
_mmengine_load_checkpoint = getattr(CheckpointLoader, '_gpunet_mm_unguarded', None) or (
    CheckpointLoader.load_checkpoint.__func__
)
CheckpointLoader._gpunet_mm_unguarded = _mmengine_load_checkpoint


def _load_checkpoint_guarded(
    cls: type, filename: str, map_location: Any = None, logger: Any = 'current'
) -> Any:
    """mmengine's ``CheckpointLoader.load_checkpoint`` (scheme lookup, download, cache),
    with every unpickling it does weights-only."""
    source = filename if isinstance(filename, str) and '://' in filename else None
    with weights_only_unpickling(source):
        return _mmengine_load_checkpoint(cls, filename, map_location, logger)


CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)
CheckpointLoader.load_checkpoint = classmethod(_load_checkpoint_guarded)
