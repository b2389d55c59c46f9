"""Checkpoint files whose unpickling would run a shell command (for the trust tests).

Each builder writes a file that, if fully unpickled, runs ``touch MARKER``; tests assert the
loaders refuse it and the marker never appears. Two containers: a raw pickle (torch's
legacy format) and torch's zip format, with real tensors next to the payload.
"""

from __future__ import annotations

import os
import pickle

import torch


class RunsCommand:
    """Unpickles as ``os.system(cmd)``."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def payload(marker: str) -> dict:
    return {'state_dict': {'w': torch.ones(2)}, 'meta': {'note': RunsCommand(f'touch {marker}')}}


def write_raw(path: str, marker: str) -> str:
    with open(path, 'wb') as f:
        pickle.dump(payload(marker), f, protocol=2)
    return path


def write_zip(path: str, marker: str) -> str:
    torch.save(payload(marker), path)
    return path


def write_getattr_gadget(path: str, marker: str) -> str:
    """``getattr`` reaching ``os.system`` through a function's ``__globals__`` (no os GLOBAL).

    HistoryBuffer checkpoints legitimately pickle ``getattr(HistoryBuffer, 'mean')``; this is
    what a general ``getattr`` allow-list would let through.
    """

    # __builtins__['__import__']('os').system(cmd), reached from HistoryBuffer.__init__ via
    # getattr; spelled in raw opcodes, since pickle cannot build it from Python objects
    def text(s: bytes) -> bytes:
        return b'X' + len(s).to_bytes(4, 'little') + s

    def call_getattr(name: bytes) -> bytes:  # stack [.., obj] -> [.., getattr(obj, name)]
        return b'q\x09' + b'0' + b'h\x00' + b'h\x09' + text(name) + b'\x86R'

    def call_get(key: bytes) -> bytes:  # stack [.., dict] -> [.., dict.get(key)]
        return call_getattr(b'get') + text(key) + b'\x85R'

    ops = (
        b'\x80\x02cbuiltins\ngetattr\nq\x000'
        + b'cmmengine.logging.history_buffer\nHistoryBuffer\n'
        + call_getattr(b'__init__')
        + call_getattr(b'__globals__')
        + call_get(b'__builtins__')
        + call_get(b'__import__')
        + text(b'os')
        + b'\x85R'
        + call_getattr(b'system')
        + text(f'touch {marker}'.encode())
        + b'\x85R.'
    )
    with open(path, 'wb') as f:
        f.write(ops)
    return path


def marker_path(tmp_path) -> str:
    return str(tmp_path / 'MARKER_pickle_ran')
