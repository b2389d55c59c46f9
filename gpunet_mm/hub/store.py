"""Hub files: JSON Lines of entries, read with line numbers, written atomically.

Format: the first line is a header ``{"gpunet_mm_hub": 1}``, then one :class:`HubEntry`
dict per line (blank lines are ignored). JSON Lines rather than one JSON document so that
an error points at the line of the bad entry, and a diff of a hub file shows whole entries.

A hub file is never rewritten in place. :func:`gpunet_mm.hub.write_entries` writes a
temporary file in the same folder, ``fsync``s it, ``os.replace``s it over the old one and
``fsync``s the folder, so a crash at any point leaves either the old file or the new one,
never half of either. A file
that does not parse is reported with its path and line and is never overwritten: every
update reads (and so validates) the file first. Read-modify-write updates hold an
``fcntl`` lock on ``<file>.lock`` so that two processes adding entries at once both land.
"""

from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
from typing import Iterator, List

from ..atomic_write import atomic_write_text
from .entry import HubEntry, HubError

FORMAT_VERSION = 1
HEADER = {'gpunet_mm_hub': FORMAT_VERSION}


class HubFileError(HubError):
    """A hub file that cannot be read; names the file and the line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path, self.line = path, line
        super().__init__(f'{path}:{line}: {message} (the file was left as it is)')


def read_entries(path: str) -> List[HubEntry]:
    """Entries of a hub file; a missing file is an empty hub."""
    if not osp.exists(path):
        return []
    entries: List[HubEntry] = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                msg = f'not valid JSON ({e.msg}, column {e.colno})'
                raise HubFileError(path, lineno, msg) from None
            if lineno == 1 and isinstance(obj, dict) and 'gpunet_mm_hub' in obj:
                if obj['gpunet_mm_hub'] != FORMAT_VERSION:
                    raise HubFileError(
                        path,
                        lineno,
                        f'hub format {obj["gpunet_mm_hub"]!r}; this version reads {FORMAT_VERSION}',
                    )
                continue
            try:
                entries.append(HubEntry.from_dict(obj))
            except (HubError, TypeError) as e:
                raise HubFileError(path, lineno, str(e)) from e
    return entries


def dumps_entries(entries: List[HubEntry]) -> str:
    lines = [json.dumps(HEADER)]
    lines += [json.dumps(e.to_dict(), sort_keys=True) for e in entries]
    return '\n'.join(lines) + '\n'


def write_entries(path: str, entries: List[HubEntry]) -> None:
    """Replace ``path`` with ``entries`` atomically (:mod:`gpunet_mm.atomic_write`: temp file,
    fsync, rename, fsync dir; a symlinked hub file is written through)."""
    atomic_write_text(path, dumps_entries(entries))


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive lock for a read-modify-write of ``path`` (no-op where fcntl is missing)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path + '.lock', 'a') as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
