"""Latency cache: nothing is measured twice, across runs and across search workers.

Results live in one SQLite file keyed by (architecture hash, detector/model hash, input
shape, batch, precision, backend, device). SQLite rather than a JSON file because many
search workers write at once: every insert is one atomic transaction (WAL journal, busy
timeout), readers never see half a record, and a crash loses at most the measurement in
flight. Values are the full :class:`LatencyResult` as JSON, so the environment travels along.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import os.path as osp
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .backends.base import LatencyResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latency (
    key TEXT PRIMARY KEY,
    arch_hash TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    precision TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    median_ms REAL NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS latency_target ON latency (backend, device, precision);
"""


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable hash of a JSON-able object (e.g. the detector config without the backbone)."""
    blob = json.dumps(obj, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class LatencyKey:
    """What makes two measurements the same measurement."""

    arch_hash: str
    shape: Tuple[int, int]
    batch: int
    precision: str
    backend: str
    device: str
    model_hash: str = ''

    def digest(self) -> str:
        d = asdict(self)
        d['shape'] = list(self.shape)
        return config_hash(d, 32)


class LatencyCacheError(RuntimeError):
    """The cache database cannot be used; the message names its path, and ``filename`` is
    it (as on an ``OSError``: the search names the file when the disk is full)."""

    def __init__(self, message: str, filename: Optional[str] = None) -> None:
        super().__init__(message)
        self.filename = filename


class LatencyCache:
    """SQLite-backed ``key -> LatencyResult`` store; safe for concurrent processes.

    Every database problem (a garbage file, a read-only folder, the file deleted while the
    cache is open) raises :class:`LatencyCacheError` naming the path, instead of sqlite's
    bare ``file is not a database`` / ``no such table``.
    """

    def __init__(self, path: str) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f'latency cache path: got {path!r}; allowed: a file path')
        self.path = str(path)
        if osp.isdir(self.path):
            raise LatencyCacheError(
                f'latency cache {self.path} is a directory; allowed: a database file path'
            )
        folder = osp.dirname(osp.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise LatencyCacheError(
                f'latency cache {self.path}: cannot create its folder {folder}: {e}'
            ) from e
        self.hits = 0
        self.misses = 0
        self._opened = False
        with self._db() as con:
            con.executescript(_SCHEMA)
        self._opened = True

    def _connect(self) -> sqlite3.Connection:
        if self._opened and not osp.isfile(self.path):
            raise LatencyCacheError(
                f'latency cache {self.path} was deleted or moved while in use; its '
                'measurements are gone: reopen LatencyCache to start a new one'
            )
        con = sqlite3.connect(self.path, timeout=60)
        con.execute('PRAGMA journal_mode=WAL')
        return con

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction; sqlite errors become errors naming the file."""
        con = None
        try:
            con = self._connect()
            with con:
                yield con
        except sqlite3.DatabaseError as e:
            reason = str(e)
            if 'not a database' in reason or 'malformed' in reason:
                why = 'is not an SQLite latency cache (garbage or another format)'
            elif 'readonly' in reason or 'unable to open' in reason:
                why = 'cannot be written (read-only file or folder?)'
            elif 'no such table' in reason:
                why = 'has no latency table (deleted and re-created while in use?)'
            elif 'disk is full' in reason:
                why = 'cannot be written: the disk is full (free space on it)'
            else:
                why = 'failed'
            raise LatencyCacheError(f'latency cache {self.path} {why}: {reason}', self.path) from e
        finally:
            if con is not None:
                con.close()

    def get(self, key: LatencyKey) -> Optional[LatencyResult]:
        with self._db() as con:
            row = con.execute(
                'SELECT result FROM latency WHERE key = ?', (key.digest(),)
            ).fetchone()
        return LatencyResult.from_dict(self._checked(row[0], key.digest())) if row else None

    def _checked(self, text: str, key: str) -> Dict[str, Any]:
        """A stored result, checked by its schema: a hand-edited or foreign row (negative or
        NaN median, not JSON) is an error naming the cache file and the row, never a
        latency the search uses."""
        from ..schema import LatencyRow, SchemaError, validate

        where = f'latency cache {self.path} row {key[:16]}'
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as e:
            raise LatencyCacheError(f'{where}: not valid JSON ({e})') from None
        try:
            validate(LatencyRow, d, where)
        except SchemaError as e:
            raise LatencyCacheError(
                f'{e}; delete the row (or the cache file) to measure it again'
            ) from None
        return d

    def put(self, key: LatencyKey, result: LatencyResult) -> None:
        with self._db() as con:
            con.execute(
                'INSERT OR REPLACE INTO latency VALUES (?,?,?,?,?,?,?,?,?,?,?,?)',
                (
                    key.digest(),
                    key.arch_hash,
                    key.model_hash,
                    key.shape[0],
                    key.shape[1],
                    key.batch,
                    key.precision,
                    key.backend,
                    key.device,
                    result.median_ms,
                    json.dumps(result.to_dict()),
                    time.time(),
                ),
            )

    def get_or_measure(
        self, key: LatencyKey, measure: Callable[[], LatencyResult]
    ) -> Tuple[LatencyResult, bool]:
        """The cached result, or ``measure()`` stored under ``key``; returns (result, hit)."""
        found = self.get(key)
        if found is not None:
            self.hits += 1
            return found, True
        self.misses += 1
        result = measure()
        self.put(key, result)
        return result, False

    def __len__(self) -> int:
        with self._db() as con:
            return int(con.execute('SELECT COUNT(*) FROM latency').fetchone()[0])

    def records(
        self, backend: Optional[str] = None, device: Optional[str] = None
    ) -> Iterator[Dict[str, Any]]:
        """All rows (optionally for one backend/device), for fitting the predictor."""
        q, args = (
            'SELECT arch_hash, model_hash, height, width, batch, precision, backend, '
            'device, median_ms, result FROM latency',
            [],
        )
        conds: List[str] = []
        if backend:
            conds.append('backend = ?')
            args.append(backend)
        if device:
            conds.append('device = ?')
            args.append(device)
        if conds:
            q += ' WHERE ' + ' AND '.join(conds)
        with self._db() as con:
            rows = con.execute(q, args).fetchall()
        cols = (
            'arch_hash',
            'model_hash',
            'height',
            'width',
            'batch',
            'precision',
            'backend',
            'device',
            'median_ms',
            'result',
        )
        for r in rows:
            d = dict(zip(cols, r))
            d['result'] = self._checked(d['result'], f'{d["arch_hash"]}')
            d['median_ms'] = d['result']['median_ms']
            yield d
