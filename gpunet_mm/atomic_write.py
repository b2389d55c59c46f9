"""Atomic file writes: the one helper every writer of a file that must never be half written
uses (hub files, optimiser states, reports, demo-data metadata, ONNX exports, TensorRT
engines).

The new content goes to a temporary file in the destination's folder (so the rename never
crosses a file system), is ``fsync``-ed, ``os.replace``-d over the old file and the folder
is ``fsync``-ed: a crash at any point leaves the old file or the new one, never a truncated
one. A symlink is written through (its target gets the content, the link stays a link).
Standard library only, so torch-free modules (``gpunet_mm.nas``) use it too.
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path to write; on success it replaces ``path``, on error it is removed.

    For writers that take a file name (``torch.onnx.export``, ``json.dump`` into ``open``)::

        with atomic_path('model.onnx') as tmp:
            torch.onnx.export(net, args, tmp)
    """
    path = osp.realpath(path)
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    base, ext = osp.splitext(osp.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix=f'.tmp{ext}', dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            e.filename = path  # a failed write() names no file (a full disk): name it
        raise
    _fsync_dir(folder)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode('utf-8'))


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (where the platform has directory descriptors)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
