"""The search journal: the one place where a search's trials and history live.

Storage, not strategy (Optuna's split): the optimisers hold their settings and RNG; the
journal holds every trial, every attempt and every event, and the optimisers' small states,
so a controller killed at any instant (``kill -9`` included) can rebuild everything from
it. Every change is one SQLite transaction, written *before* the controller acts on it
(WAL, ``synchronous=FULL``: a commit is on disk when it returns).

Events form a hash chain (each row stores ``sha256(previous hash + row)``): the last hash
names the journal's content (the hub's provenance ``journal_hash``), and a chain that does
not verify on open (a truncated, edited or half-copied file) is reported, never repaired or
overwritten. The chain covers every table results are read from: each change of a trial,
an attempt or a meta value is an event carrying the new values, and on open the ``trials``
and ``attempts`` rows and the meta values must equal what the events say (a hand-edited
metric is found). The same holds for the optimisers' states, the rung attempts and
results, the promotions and the final retrains: each write logs an event with the new
values (or, for JSON blobs, their digest).

The chain's head (last sequence number and hash) lives in two places. In ``meta``, written
in the same transaction as each event: a hand-deleted event row shows. And in a small file
next to the journal (``journal.sqlite.head``), replaced atomically (temporary file, fsync,
rename) *after* each commit: a truncation of the SQLite file, or of its last events together
with the ``meta`` head, leaves the database behind the file and is refused. A crash (``kill
-9``, power loss) between the commit and the file's replacement leaves the file one
transaction *behind* the database, never ahead, so on open the file must name an event of
the chain (seq and hash) that is not past its end: a database ahead of its head file is a
crash, one behind it was truncated. The head file is read before the database snapshot,
so a search writing while another process opens the journal only ever looks like a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import os.path as osp
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from .faults import disk_full

#: the journal's layout. 2: a pool trial records when it first finished (``finished_seq``)
#: and an optimiser's stored trials hold only what is the optimiser's own (the outcome is
#: the pool trial's); 1 (before) is migrated on open (``SearchJournal._migrate``)
JOURNAL_FORMAT = 2
JOURNAL_NAME = 'journal.sqlite'
#: meta key of the chain's head, written with every event
CHAIN_HEAD = 'chain_head'
#: the chain head's own file: ``journal.sqlite`` + this, replaced after each commit
HEAD_SUFFIX = '.head'
#: trial columns whose every change is an event (``lease_until``/``updated`` are not)
_TRIAL_CHECKED = (
    'arch_hash',
    'origin',
    'budget_idx',
    'status',
    'attempts',
    'predicted_ms',
    'latency_ms',
    'latency',
    'metric',
    'result',
    'error',
    'arch',
)


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: numbers by value (an event may spell a numpy scalar as its string),
    NaN equal to itself."""
    if a == b:
        return True
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return fa == fb or (fa != fa and fb != fb)


def _digest(text: Optional[str]) -> Optional[str]:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


#: pool statuses. ``proposed``: asked, exact latency pending; ``queued``: within a budget,
#: waiting for a worker; ``running``: dispatched under a lease; ``complete``: trained and
#: evaluated; ``failed``: every attempt failed; ``infeasible``: measured over every budget
#: (never trained).
TRIAL_STATUSES = ('proposed', 'queued', 'running', 'complete', 'failed', 'infeasible')
FINISHED = ('complete', 'failed', 'infeasible')

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    arch_hash TEXT NOT NULL UNIQUE,
    arch TEXT NOT NULL,
    origin TEXT NOT NULL,
    budget_idx INTEGER,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    predicted_ms REAL,
    latency_ms REAL,
    latency TEXT,
    metric REAL,
    result TEXT,
    error TEXT,
    lease_until REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished_seq INTEGER
);
CREATE TABLE IF NOT EXISTS attempts (
    trial_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    outcome TEXT,
    error TEXT,
    PRIMARY KEY (trial_id, attempt)
);
CREATE TABLE IF NOT EXISTS optimizer_state (budget_idx INTEGER PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS optimizer_trials (
    budget_idx INTEGER NOT NULL,
    opt_id INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (budget_idx, opt_id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    kind TEXT NOT NULL,
    trial_id INTEGER,
    data TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""
    + """
CREATE TABLE IF NOT EXISTS rung_attempts (
    trial_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    start_epochs INTEGER NOT NULL,
    target_epochs INTEGER,
    epochs_trained INTEGER,
    PRIMARY KEY (trial_id, attempt)
);
CREATE TABLE IF NOT EXISTS rung_results (
    trial_id INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    epochs INTEGER,
    metric REAL,
    checkpoint TEXT,
    result TEXT NOT NULL,
    PRIMARY KEY (trial_id, rung)
);
CREATE TABLE IF NOT EXISTS promotions (
    trial_id INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    t REAL NOT NULL,
    PRIMARY KEY (trial_id, rung)
);
CREATE TABLE IF NOT EXISTS finals (
    trial_id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    metric REAL,
    result TEXT,
    error TEXT
);
"""
)


class JournalError(RuntimeError):
    """The journal cannot be used as asked (corrupt, another search's, config differs)."""


class JournalWriteError(JournalError):
    """A change could not be written (the disk is full) and was rolled back: the journal
    is as it was before it. ``filename`` is the file, as on an ``OSError``."""

    def __init__(self, message: str, filename: Optional[str] = None) -> None:
        super().__init__(message)
        self.filename = filename


@dataclass
class PoolTrial:
    """One architecture of the search's pool, as the journal holds it."""

    id: int
    arch_hash: str
    arch: Dict[str, Any]
    origin: str
    budget_idx: Optional[int]
    status: str
    attempts: int = 0
    predicted_ms: Optional[float] = None
    latency_ms: Optional[float] = None
    latency: Optional[Dict[str, Any]] = None
    metric: Optional[float] = None
    result: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    lease_until: Optional[float] = None
    created: float = 0.0
    updated: float = 0.0
    #: the event at which it first finished (the order every optimiser learns it in)
    finished_seq: Optional[int] = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PoolTrial:
        d = dict(row)
        for k in ('arch', 'latency', 'result'):
            d[k] = json.loads(d[k]) if d[k] is not None else ({} if k == 'result' else None)
        return cls(**d)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), allow_nan=True, default=str)


def _chain(prev: str, t: float, kind: str, trial_id: Optional[int], data: str) -> str:
    blob = f'{prev}|{t!r}|{kind}|{trial_id}|{data}'
    return hashlib.sha256(blob.encode()).hexdigest()


def head_path(path: str) -> str:
    """The chain head's file of the journal at ``path``."""
    return path + HEAD_SUFFIX


def _write_head(path: str, seq: int, digest: str) -> None:
    """Replace the head file atomically: readers see the old head or the new one, never a
    partial file; a leftover temporary file (a kill mid-write) is never read."""
    from ..atomic_write import atomic_write_text

    atomic_write_text(head_path(path), _dumps(dict(format=JOURNAL_FORMAT, seq=seq, hash=digest)))


class SearchJournal:
    """SQLite journal of one search (``WORK_DIR/journal.sqlite``).

    Use :meth:`create` for a new search and :meth:`open` to resume one; both check that
    the file belongs to the search described by ``config`` (same ``config_hash``).
    """

    def __init__(self, path: str, con: sqlite3.Connection) -> None:
        self.path = path
        self.con = con
        self._last_seq = 0
        head = self._read_head()  # before the snapshot: a writer only moves it forward
        con.execute('BEGIN')  # one snapshot for the chain and the tables
        try:
            self._last_hash = self._verify_chain(head)
            self._verify_tables()
        finally:
            con.execute('COMMIT')

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute('PRAGMA journal_mode=WAL')
            con.execute('PRAGMA synchronous=FULL')
            return con
        except sqlite3.DatabaseError as e:
            if disk_full(e) is not None:  # WAL mode writes; a full disk is not corruption
                raise JournalWriteError(
                    f'the search journal {path} could not be opened for writing ({e}); free '
                    'space on that disk, then run the same command again',
                    path,
                ) from e
            raise JournalError(
                f'journal {path} is not a readable SQLite database ({e}); it was left as '
                'it is: move it away to start a new search in this work_dir'
            ) from e

    @classmethod
    def create(cls, work_dir: str, config: Mapping[str, Any]) -> SearchJournal:
        """A new journal for ``config``; refuses a work_dir that holds another search."""
        path = osp.join(work_dir, JOURNAL_NAME)
        if osp.exists(path):
            raise JournalError(
                f'{work_dir} already holds a search journal ({path}); pass --resume to '
                'continue it, or choose a new --work-dir (journals are never mixed)'
            )
        os.makedirs(work_dir, exist_ok=True)
        con = None
        try:
            _write_head(path, 0, '')  # before the database: the head file is never ahead of it
            con = cls._connect(path)
            con.executescript(_SCHEMA)
            j = cls(path, con)
            with j._tx():
                for k, v in (
                    ('format', JOURNAL_FORMAT),
                    ('config', config),
                    ('config_hash', config_digest(config)),
                    ('created', time.time()),
                ):
                    con.execute('INSERT INTO meta VALUES (?, ?)', (k, _dumps(v)))
                j._event(
                    'create',
                    None,
                    dict(config_hash=config_digest(config), head=osp.basename(head_path(path))),
                )
        except BaseException as e:
            if con is not None:
                con.close()
            full = disk_full(e) if isinstance(e, Exception) else None
            if full is not None:  # nothing is in it yet: leave no half-made journal behind
                for p in (path, path + '-wal', path + '-shm', head_path(path)):
                    with contextlib.suppress(OSError):
                        os.remove(p)
                raise JournalWriteError(
                    f'the search journal {path} could not be created ({full.error}): nothing '
                    'was started; free space on that disk and run the same command again',
                    path,
                ) from e
            raise
        return j

    @classmethod
    def open(cls, work_dir: str, config: Optional[Mapping[str, Any]] = None) -> SearchJournal:
        """Open an existing journal; with ``config``, refuse when the search differs."""
        path = osp.join(work_dir, JOURNAL_NAME)
        if not osp.isfile(path):
            raise JournalError(
                f'--resume: no journal at {path}; nothing to resume (start the search '
                'without --resume)'
            )
        con = cls._connect(path)
        try:
            return cls._checked(path, con, config)
        except BaseException:
            con.close()  # a refused journal leaves no connection open
            raise

    @classmethod
    def _checked(
        cls, path: str, con: sqlite3.Connection, config: Optional[Mapping[str, Any]]
    ) -> SearchJournal:
        """The journal on ``con`` once integrity, format and (given) config are checked."""
        try:
            ok = con.execute('PRAGMA quick_check').fetchone()[0]
            fmt = json.loads(con.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0])
        except (sqlite3.DatabaseError, TypeError) as e:
            raise JournalError(
                f'journal {path} is corrupt or truncated ({e}); it was left as it is'
            ) from e
        if ok != 'ok':
            raise JournalError(f'journal {path} failed its integrity check: {ok}')
        if fmt not in (1, JOURNAL_FORMAT):
            raise JournalError(
                f'journal {path} has layout version {fmt!r}; this version of gpunet_mm reads '
                f'layout {JOURNAL_FORMAT} (and migrates layout 1). Open it with the gpunet_mm '
                'that wrote it, or start a new --work-dir'
            )
        con.executescript(_SCHEMA)  # tables added since (rungs): empty in an older journal
        j = cls(path, con)  # verified as written, before anything is migrated
        if fmt == 1:
            j._migrate()
        if config is not None:
            diff = config_diff(j.config, config)
            if diff:
                raise JournalError(
                    f'--resume: the config differs from the one the journal {path} was '
                    f'started with, at: {", ".join(diff)}. Resume with the same config, or '
                    'start a new --work-dir'
                )
        return j

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> SearchJournal:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.con.execute('SELECT value FROM meta WHERE key=?', (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx():
            self.con.execute('INSERT OR REPLACE INTO meta VALUES (?, ?)', (key, _dumps(value)))
            self._event('meta', None, dict(key=key, value=value))

    @property
    def config(self) -> Dict[str, Any]:
        return self.meta('config')

    @property
    def journal_hash(self) -> str:
        """Hash of the whole event chain so far (what the hub records as provenance)."""
        return self._last_hash

    # ------------------------------------------------------------------ events
    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def _event(self, kind: str, trial_id: Optional[int], data: Any) -> None:
        t = time.time()
        blob = _dumps(data)
        h = _chain(self._last_hash, t, kind, trial_id, blob)
        cur = self.con.execute(
            'INSERT INTO events (t, kind, trial_id, data, hash) VALUES (?, ?, ?, ?, ?)',
            (t, kind, trial_id, blob, h),
        )
        self._last_seq = int(cur.lastrowid)
        self.con.execute(
            'INSERT OR REPLACE INTO meta VALUES (?, ?)',
            (CHAIN_HEAD, _dumps(dict(seq=self._last_seq, hash=h))),
        )
        self._last_hash = h

    def log(self, kind: str, trial_id: Optional[int] = None, data: Any = None) -> None:
        """Append an event on its own (e.g. 'resume', 'stop')."""
        with self._tx():
            self._event(kind, trial_id, data or {})

    def _read_head(self) -> Optional[Dict[str, Any]]:
        """The head file's ``seq`` and ``hash``, or None when there is none."""
        target = head_path(self.path)
        try:
            with open(target) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise JournalError(
                f'journal {self.path}: its chain head {target} cannot be read ({e})'
            ) from e
        try:
            head = json.loads(text)
            seq, digest = head['seq'], head['hash']
            if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(digest, str):
                raise TypeError(f'seq {seq!r}, hash {digest!r}')
        except (ValueError, KeyError, TypeError) as e:
            raise JournalError(
                f'journal {self.path}: its chain head {target} is not one ({e}; allowed: '
                '{"seq": N, "hash": "..."} as the search writes it); it was edited. Both '
                'were left as they are'
            ) from None
        return dict(seq=seq, hash=digest)

    def _verify_chain(self, head: Optional[Dict[str, Any]] = None) -> str:
        """Replay the hash chain; check it against the ``meta`` head and the head file
        (``head``, read before this snapshot). Returns the last hash."""
        prev = ''
        expect = 1
        at_head: Optional[str] = '' if head is not None and head['seq'] == 0 else None
        wants_file = False
        for row in self.con.execute(
            'SELECT seq, t, kind, trial_id, data, hash FROM events ORDER BY seq'
        ):
            if row['seq'] != expect:
                raise JournalError(
                    f'journal {self.path}: event {expect} is missing (found {row["seq"]}); '
                    'the file is truncated or was edited. It was left as it is'
                )
            h = _chain(prev, row['t'], row['kind'], row['trial_id'], row['data'])
            if h != row['hash']:
                raise JournalError(
                    f'journal {self.path}: event {row["seq"]} ({row["kind"]}) does not match '
                    'its hash; the file is corrupt or was edited. It was left as it is'
                )
            if expect == 1 and row['kind'] == 'create':
                wants_file = 'head' in json.loads(row['data'])
            if head is not None and row['seq'] == head['seq']:
                at_head = h
            prev, expect = h, expect + 1
        self._last_seq = expect - 1
        self._covers_all = wants_file
        target = head_path(self.path)
        if head is None and wants_file:
            raise JournalError(
                f'journal {self.path}: its chain head file {target} is missing (the journal '
                'was copied without it, or it was deleted); a truncation cannot be ruled out. '
                'Copy the whole work_dir. It was left as it is'
            )
        if head is not None and head['seq'] > self._last_seq:
            raise JournalError(
                f'journal {self.path}: its chain head file {target} says the last event is '
                f'{head["seq"]}, but the events end at {self._last_seq}; events were removed '
                '(the file is truncated, or an older copy). It was left as it is'
            )
        if head is not None and at_head != head['hash']:
            raise JournalError(
                f'journal {self.path}: event {head["seq"]} is not the one its chain head '
                f'({target}) names; the events were rewritten or the head file belongs to '
                'another journal. It was left as it is'
            )
        head = self.con.execute('SELECT value FROM meta WHERE key=?', (CHAIN_HEAD,)).fetchone()
        if head is not None:
            head = json.loads(head[0])
            if head.get('seq') != expect - 1 or head.get('hash') != (prev or None):
                raise JournalError(
                    f'journal {self.path}: its chain head says the last event is '
                    f'{head.get("seq")}, but the events end at {expect - 1}; events were '
                    'removed or added by hand (the file is truncated or was edited). It was '
                    'left as it is'
                )
        return prev

    def _finish_order(self) -> Dict[int, int]:
        """trial id -> the event at which its status first became finished, replayed from
        the chain (what ``finished_seq`` must hold)."""
        status: Dict[int, str] = {}
        out: Dict[int, int] = {}
        for row in self.con.execute(
            'SELECT seq, kind, trial_id, data FROM events WHERE trial_id IS NOT NULL ORDER BY seq'
        ):
            kind, tid, data = row['kind'], row['trial_id'], json.loads(row['data'])
            if not isinstance(data, dict) or kind.startswith('final_'):
                continue
            if kind == 'propose':
                status[tid] = data.get('status', 'proposed')
            elif kind == 'dispatch':
                status[tid] = 'running'
            elif kind == 'promote':
                status[tid] = 'queued'
            elif 'epochs_trained' in data:
                status[tid] = 'complete'
            elif 'status' in data:
                status[tid] = data['status']
            if tid not in out and status.get(tid) in FINISHED:
                out[tid] = int(row['seq'])
        return out

    def _migrate(self) -> None:
        """Layout 1 -> 2, in one transaction: the pool trials get ``finished_seq`` (replayed
        from the verified chain) and the format becomes 2. The optimisers' stored trials of
        layout 1 (full trial dicts) are converted by their store when it is opened
        (:class:`~gpunet_mm.search.trial_store.JournalTrialStore`), which has the space."""
        cols = {r[1] for r in self.con.execute('PRAGMA table_info(trials)')}
        with self._tx():
            if 'finished_seq' not in cols:
                self.con.execute('ALTER TABLE trials ADD COLUMN finished_seq INTEGER')
            self.con.executemany(
                'UPDATE trials SET finished_seq=? WHERE id=?',
                [(seq, tid) for tid, seq in self._finish_order().items()],
            )
            self.con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('format', ?)", (_dumps(JOURNAL_FORMAT),)
            )
            self._event('meta', None, dict(key='format', value=JOURNAL_FORMAT))
            self._event('migrate', None, dict(layout=[1, JOURNAL_FORMAT]))

    def _finished(self, trial_id: int) -> None:
        """Within a write's transaction, after its event: a trial that just finished for the
        first time records that event (the order the optimisers learn it in)."""
        marks = ','.join('?' * len(FINISHED))
        self.con.execute(
            f'UPDATE trials SET finished_seq=? WHERE id=? AND finished_seq IS NULL AND '
            f'status IN ({marks})',
            (self._last_seq, trial_id, *FINISHED),
        )

    def finished_since(self, seq: int) -> List[Dict[str, Any]]:
        """The pool trials that first finished after event ``seq``, in that order: what an
        optimiser learns (id, arch_hash, arch, status, metric, latency_ms, error,
        finished_seq, and ``first_metric``: the metric of its first rung, None without
        rungs)."""
        rows = self.con.execute(
            'SELECT t.id, t.arch_hash, t.arch, t.status, t.metric, t.latency_ms, t.error, '
            't.finished_seq, r.metric AS first_metric FROM trials t LEFT JOIN rung_results r '
            'ON r.trial_id=t.id AND r.rung=0 WHERE t.finished_seq > ? ORDER BY t.finished_seq',
            (seq,),
        )
        return [dict(r, arch=json.loads(r['arch'])) for r in rows]

    def _optimizer_event(self, budget_idx: int, state: str, rows: Sequence[tuple]) -> None:
        """The chain's record of an optimiser save: digests of its state and changed rows
        (the blobs stay in their tables; the digests show an edit)."""
        self._event(
            'optimizer_state',
            None,
            dict(
                budget_idx=budget_idx,
                state=_digest(state),
                trials={str(r[1]): _digest(r[2]) for r in rows},
            ),
        )

    def _verify_tables(self) -> None:
        """Every table results or state are read from holds what the verified events say
        (journals written before the chain head was kept are checked by their chain only;
        ones written before the head file cover trials, attempts and meta)."""
        if self.con.execute('SELECT 1 FROM meta WHERE key=?', (CHAIN_HEAD,)).fetchone() is None:
            return
        trials: Dict[int, Dict[str, Any]] = {}
        attempts: Dict[tuple, Dict[str, Any]] = {}
        meta: Dict[str, Any] = {}
        # the tables the head-file journals cover too
        opt_state: Dict[int, Optional[str]] = {}
        opt_trials: Dict[tuple, Optional[str]] = {}
        rung_attempts: Dict[tuple, Dict[str, Any]] = {}
        rung_results: Dict[tuple, Dict[str, Any]] = {}
        promotions: set = set()
        finals: Dict[int, Dict[str, Any]] = {}
        ended: Dict[int, int] = {}  # trial -> its last ended attempt
        for row in self.con.execute('SELECT kind, trial_id, data FROM events ORDER BY seq'):
            kind, tid, data = row['kind'], row['trial_id'], json.loads(row['data'])
            if kind == 'create':
                meta['config_hash'] = data.get('config_hash')
            elif kind == 'meta':
                meta[data['key']] = data['value']
            elif kind == 'optimizer_state':
                b = data['budget_idx']
                opt_state[b] = data['state']
                opt_trials.update({(b, int(k)): v for k, v in data['trials'].items()})
            elif tid is None or not isinstance(data, dict):
                continue
            elif kind == 'propose':
                trials[tid] = dict(
                    {k: data.get(k) for k in ('arch_hash', 'origin', 'budget_idx', 'arch_digest')},
                    predicted_ms=data.get('predicted_ms'),
                    status=data.get('status', 'proposed'),
                    attempts=0,
                )
            elif kind == 'dispatch':
                trials.setdefault(tid, {}).update(status='running', attempts=data['attempt'])
                attempts[(tid, data['attempt'])] = dict(outcome=None, error=None)
                rung_attempts[(tid, data['attempt'])] = dict(
                    rung=data.get('rung', 0),
                    start_epochs=data.get('start_epochs', 0),
                    target_epochs=data.get('target_epochs'),
                    epochs_trained=None,
                )
            elif kind == 'attempt_end':
                attempts[(tid, data['attempt'])] = dict(
                    outcome=data.get('outcome'), error=data.get('error')
                )
                # the newest attempt (a halted one is re-ended later, not re-run)
                ended[tid] = max(ended.get(tid, 0), data['attempt'])
            elif kind == 'promote':
                trials.setdefault(tid, {}).update(status='queued')
                promotions.add((tid, data['rung']))
            elif kind == 'final_queued':
                finals.setdefault(
                    tid, dict(status='queued', attempts=0, failures=0, metric=None, error=None)
                )
            elif kind == 'final_dispatch':
                finals.setdefault(tid, {}).update(status='running', attempts=data['attempt'])
            elif kind == 'final_end':
                want = finals.setdefault(tid, {})
                want.update(metric=data.get('metric'), error=data.get('error'))
                if data.get('outcome') not in ('ok', 'lost'):
                    want['failures'] = want.get('failures', 0) + 1
                if 'status' in data:
                    want.update(status=data['status'], result_digest=data.get('result_digest'))
            elif kind.startswith('final_'):
                continue
            elif 'epochs_trained' in data:  # a rung's result (complete_rung)
                want = trials.setdefault(tid, {})
                want.update(status='complete', metric=data.get('metric'), error=None)
                want.pop('result', None)  # its digest, when the event has one
                if 'result_digest' in data:
                    want['result_digest'] = data['result_digest']
                rung_results[(tid, data['rung'])] = {
                    k: data.get(k) for k in ('epochs', 'metric', 'checkpoint', 'result_digest')
                }
                if (tid, ended.get(tid)) in rung_attempts:
                    rung_attempts[(tid, ended[tid])]['epochs_trained'] = data['epochs_trained']
            else:  # update_trial: the event holds the new column values
                want = trials.setdefault(tid, {})
                want.update({k: v for k, v in data.items() if k in _TRIAL_CHECKED})
                if 'result' in data:
                    want.pop('result_digest', None)
        found = {r['id']: dict(r) for r in self.con.execute('SELECT * FROM trials')}
        first_finish = self._finish_order()
        for tid in sorted(set(found) | set(trials)):
            want, got = trials.get(tid), found.get(tid)
            if want is None or got is None:
                self._edited(f'trial {tid} is {"missing" if got is None else "not in the events"}')
            if 'finished_seq' in got:  # layout 1 lacks it until migrated
                want['finished_seq'] = first_finish.get(tid)
            got = dict(got, arch_digest=_digest(got['arch']), result_digest=_digest(got['result']))
            for k, v in want.items():
                if k == 'arch':
                    k, v = 'arch_digest', _digest(v)
                if not _same(got.get(k), v):
                    self._edited(f'trial {tid} {k} is {got.get(k)!r}, the events say {v!r}')
        rows = {
            (r['trial_id'], r['attempt']): dict(r)
            for r in self.con.execute('SELECT * FROM attempts')
        }
        self._compare('attempt {1} of trial {0}', rows, attempts)
        stored = {r['key']: json.loads(r['value']) for r in self.con.execute('SELECT * FROM meta')}
        for k, v in meta.items():
            if k in stored and _dumps(v) != _dumps(stored[k]):
                self._edited(f'meta {k!r} differs from its events')
        if 'config' in stored and config_digest(stored['config']) != stored.get('config_hash'):
            self._edited('meta config does not match its config_hash')
        if not self._covers_all:
            return
        q = self.con.execute
        self._compare(
            'the optimiser state of budget {0}',
            {(r[0],): dict(state=_digest(r[1])) for r in q('SELECT * FROM optimizer_state')},
            {(b,): dict(state=v) for b, v in opt_state.items()},
        )
        self._compare(
            'optimiser trial {1} of budget {0}',
            {(r[0], r[1]): dict(data=_digest(r[2])) for r in q('SELECT * FROM optimizer_trials')},
            {k: dict(data=v) for k, v in opt_trials.items()},
        )
        self._compare(
            'the rung of attempt {1} of trial {0}',
            {(r['trial_id'], r['attempt']): dict(r) for r in q('SELECT * FROM rung_attempts')},
            rung_attempts,
        )
        self._compare(
            'the rung {1} result of trial {0}',
            {
                (r['trial_id'], r['rung']): dict(r, result_digest=_digest(r['result']))
                for r in q('SELECT * FROM rung_results')
            },
            rung_results,
        )
        self._compare(
            'the promotion of trial {0} to rung {1}',
            {(r[0], r[1]): {} for r in q('SELECT trial_id, rung FROM promotions')},
            {k: {} for k in promotions},
        )
        self._compare(
            'the final retrain of trial {0}',
            {
                (r['trial_id'],): dict(r, result_digest=_digest(r['result']))
                for r in q('SELECT * FROM finals')
            },
            {(k,): v for k, v in finals.items()},
        )

    def _compare(
        self, what: str, rows: Mapping[tuple, Mapping[str, Any]], want: Mapping[tuple, Any]
    ) -> None:
        """Rows (by key) equal the events' values: none missing, none extra, none changed."""
        for key in sorted(set(rows) | set(want), key=repr):
            got, exp = rows.get(key), want.get(key)
            name = what.format(*key)
            if got is None or exp is None:
                self._edited(f'{name} is {"missing" if got is None else "not in the events"}')
            for k, v in exp.items():
                if not _same(got.get(k), v):
                    self._edited(f'{name}: {k} is {got.get(k)!r}, the events say {v!r}')

    def _edited(self, what: str) -> None:
        raise JournalError(
            f'journal {self.path}: {what}; the file was edited (results are read only from '
            'what its hash chain covers). It was left as it is'
        )

    def events(self, kind: Optional[str] = None) -> List[Dict[str, Any]]:
        q = 'SELECT seq, t, kind, trial_id, data FROM events'
        rows = self.con.execute(
            q + (' WHERE kind=?' if kind else '') + ' ORDER BY seq', (kind,) if kind else ()
        )
        return [dict(r, data=json.loads(r['data'])) for r in rows]

    # ------------------------------------------------------------------ trials
    def add_trial(
        self,
        arch_hash: str,
        arch: Mapping[str, Any],
        origin: str,
        budget_idx: Optional[int],
        predicted_ms: Optional[float],
        status: str = 'proposed',
    ) -> PoolTrial:
        now = time.time()
        with self._tx():
            cur = self.con.execute(
                'INSERT INTO trials (arch_hash, arch, origin, budget_idx, status, predicted_ms,'
                ' created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                (arch_hash, _dumps(arch), origin, budget_idx, status, predicted_ms, now, now),
            )
            tid = int(cur.lastrowid)
            self._event(
                'propose',
                tid,
                dict(
                    arch_hash=arch_hash,
                    origin=origin,
                    budget_idx=budget_idx,
                    predicted_ms=predicted_ms,
                    status=status,
                    arch_digest=_digest(_dumps(arch)),
                ),
            )
            self._finished(tid)
        return self.trial(tid)

    def update_trial(self, trial_id: int, event: str, **fields: Any) -> PoolTrial:
        """Change a trial's fields and log ``event`` in one transaction."""
        for k in ('latency', 'result', 'arch'):
            if k in fields and fields[k] is not None:
                fields[k] = _dumps(fields[k])
        if 'status' in fields and fields['status'] not in TRIAL_STATUSES:
            raise ValueError(f'status: got {fields["status"]!r}; allowed: {TRIAL_STATUSES}')
        fields['updated'] = time.time()
        cols = ', '.join(f'{k}=?' for k in fields)
        with self._tx():
            self.con.execute(f'UPDATE trials SET {cols} WHERE id=?', (*fields.values(), trial_id))
            self._event(event, trial_id, {k: v for k, v in fields.items() if k != 'updated'})
            self._finished(trial_id)
        return self.trial(trial_id)

    def start_attempt(
        self,
        trial_id: int,
        lease_until: float,
        rung: int = 0,
        start_epochs: int = 0,
        target_epochs: Optional[int] = None,
    ) -> int:
        """Record a dispatch (attempt n+1 under a lease, training from ``start_epochs`` to
        ``target_epochs`` for ``rung``) before it is sent."""
        with self._tx():
            row = self.con.execute('SELECT attempts FROM trials WHERE id=?', (trial_id,)).fetchone()
            n = int(row[0]) + 1
            now = time.time()
            self.con.execute(
                'UPDATE trials SET status=?, attempts=?, lease_until=?, updated=? WHERE id=?',
                ('running', n, lease_until, now, trial_id),
            )
            self.con.execute(
                'INSERT INTO attempts (trial_id, attempt, started) VALUES (?, ?, ?)',
                (trial_id, n, now),
            )
            self.con.execute(
                'INSERT INTO rung_attempts (trial_id, attempt, rung, start_epochs, '
                'target_epochs) VALUES (?, ?, ?, ?, ?)',
                (trial_id, n, rung, start_epochs, target_epochs),
            )
            self._event(
                'dispatch',
                trial_id,
                dict(
                    attempt=n,
                    lease_until=lease_until,
                    rung=rung,
                    start_epochs=start_epochs,
                    target_epochs=target_epochs,
                ),
            )
        return n

    def end_attempt(self, trial_id: int, attempt: int, outcome: str, error: Optional[str]) -> None:
        with self._tx():
            self.con.execute(
                'UPDATE attempts SET ended=?, outcome=?, error=? WHERE trial_id=? AND attempt=?',
                (time.time(), outcome, error, trial_id, attempt),
            )
            self._event(
                'attempt_end', trial_id, dict(attempt=attempt, outcome=outcome, error=error)
            )

    def halt_attempt(self, trial_id: int, attempt: int, reason: str) -> None:
        """Record attempt ``attempt`` of ``trial_id`` as ``halted``: it failed (or would have)
        through a cause every attempt repeats, which stopped the search. Also for an
        attempt already ended as a failure (the first ones of a run of identical failures,
        recognised only at the K-th): not the trial's failure, and no compute."""
        with self._tx():
            self.con.execute(
                'UPDATE attempts SET ended=COALESCE(ended, ?), outcome=?, error=? WHERE '
                'trial_id=? AND attempt=?',
                (time.time(), 'halted', reason, trial_id, attempt),
            )
            self._event(
                'attempt_end', trial_id, dict(attempt=attempt, outcome='halted', error=reason)
            )

    def recent_ends(self, limit: int) -> List[Dict[str, Any]]:
        """The newest ``limit`` ended attempts that count (not ``lost``, not ``halted``),
        newest first: ``trial_id``, ``attempt``, ``outcome``, ``error``. The controller reads
        its run of identical failures from them, so a resumed search sees the same run."""
        rows = self.con.execute(
            'SELECT trial_id, attempt, outcome, error FROM attempts WHERE outcome IS NOT NULL '
            "AND outcome NOT IN ('lost', 'halted') ORDER BY ended DESC, rowid DESC LIMIT ?",
            (int(limit),),
        )
        return [dict(r) for r in rows]

    def renew_leases(self, trial_ids: Sequence[int], lease_until: float) -> None:
        if not trial_ids:
            return
        with self._tx():
            self.con.executemany(
                'UPDATE trials SET lease_until=? WHERE id=? AND status=?',
                [(lease_until, i, 'running') for i in trial_ids],
            )

    def failures(self, trial_id: int, rung: Optional[int] = None) -> int:
        """Attempts that failed through the trial's own fault (not ``lost`` with a dead
        controller, not ``halted`` by a failure of the whole search, not ones still open);
        with ``rung``, only that rung's attempts."""
        q = (
            'SELECT COUNT(*) FROM attempts a LEFT JOIN rung_attempts r ON '
            'a.trial_id=r.trial_id AND a.attempt=r.attempt WHERE a.trial_id=? AND '
            "a.outcome IS NOT NULL AND a.outcome NOT IN ('ok', 'lost', 'halted')"
        )
        args: List[Any] = [trial_id]
        if rung is not None:
            q += ' AND COALESCE(r.rung, 0)=?'
            args.append(rung)
        return int(self.con.execute(q, args).fetchone()[0])

    # ------------------------------------------------------------------ rungs
    def complete_rung(
        self,
        trial_id: int,
        attempt: int,
        rung: int,
        epochs: Optional[int],
        epochs_trained: Optional[int],
        metric: float,
        result: Mapping[str, Any],
        final: bool,
    ) -> PoolTrial:
        """A rung's result, its attempt's end and the trial's new state in one transaction:
        a controller killed right after it loses nothing (the result and its checkpoint are
        kept) and one killed before it re-runs only this attempt."""
        now = time.time()
        ckpt = result.get('checkpoint')
        fields = dict(
            status='complete',
            metric=float(metric),
            result=_dumps(dict(result)),
            lease_until=None,
            error=None,
            updated=now,
        )
        with self._tx():
            self.con.execute(
                'UPDATE attempts SET ended=?, outcome=?, error=? WHERE trial_id=? AND attempt=?',
                (now, 'ok', None, trial_id, attempt),
            )
            self.con.execute(
                'UPDATE rung_attempts SET epochs_trained=? WHERE trial_id=? AND attempt=?',
                (epochs_trained, trial_id, attempt),
            )
            self.con.execute(
                'INSERT OR REPLACE INTO rung_results VALUES (?, ?, ?, ?, ?, ?)',
                (trial_id, rung, epochs, float(metric), ckpt, _dumps(dict(result))),
            )
            cols = ', '.join(f'{k}=?' for k in fields)
            self.con.execute(f'UPDATE trials SET {cols} WHERE id=?', (*fields.values(), trial_id))
            self._event('attempt_end', trial_id, dict(attempt=attempt, outcome='ok', error=None))
            self._event(
                'complete' if final else 'rung_complete',
                trial_id,
                dict(
                    rung=rung,
                    epochs=epochs,
                    epochs_trained=epochs_trained,
                    metric=float(metric),
                    checkpoint=ckpt,
                    result_digest=_digest(_dumps(dict(result))),
                ),
            )
            self._finished(trial_id)
        return self.trial(trial_id)

    def promote(self, trial_id: int, rung: int) -> PoolTrial:
        """Decide that a trial trains on to ``rung`` (queued again), in one transaction."""
        now = time.time()
        with self._tx():
            self.con.execute('INSERT INTO promotions VALUES (?, ?, ?)', (trial_id, rung, now))
            self.con.execute(
                'UPDATE trials SET status=?, lease_until=NULL, updated=? WHERE id=?',
                ('queued', now, trial_id),
            )
            self._event('promote', trial_id, dict(rung=rung))
        return self.trial(trial_id)

    def promotions(self) -> set:
        """``(trial_id, rung)`` of every promotion decided."""
        return {
            (int(r[0]), int(r[1]))
            for r in self.con.execute('SELECT trial_id, rung FROM promotions')
        }

    def target_rung(self, trial_id: int) -> int:
        """The rung a trial's next attempt trains to (0 until it is promoted)."""
        row = self.con.execute(
            'SELECT MAX(rung) FROM promotions WHERE trial_id=?', (trial_id,)
        ).fetchone()
        return 0 if row[0] is None else int(row[0])

    def rung_results(self, trial_id: Optional[int] = None) -> List[Dict[str, Any]]:
        """Rung results (``trial_id``, ``rung``, ``epochs``, ``metric``, ``checkpoint``,
        ``latency_ms``, ``arch_hash``), by trial then rung."""
        q = (
            'SELECT r.trial_id, r.rung, r.epochs, r.metric, r.checkpoint, t.latency_ms, '
            't.arch_hash '
            'FROM rung_results r JOIN trials t ON t.id=r.trial_id'
        )
        args: Tuple[Any, ...] = ()
        if trial_id is not None:
            q += ' WHERE r.trial_id=?'
            args = (trial_id,)
        return [dict(r) for r in self.con.execute(q + ' ORDER BY r.trial_id, r.rung', args)]

    def start_rungs(self) -> Dict[int, int]:
        """trial id -> the rung it started at, for the trials that started above the first
        (``nas.fidelity.brackets``): a start is recorded as a promotion to that rung with no
        rung result below it, so it is in the journal before its dispatch, like any other."""
        rows = self.con.execute(
            'SELECT p.trial_id, MIN(p.rung) FROM promotions p WHERE NOT EXISTS (SELECT 1 FROM '
            'rung_results r WHERE r.trial_id=p.trial_id AND r.rung < p.rung) GROUP BY p.trial_id'
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def top_rungs(self) -> Dict[int, int]:
        """trial id -> the highest rung it finished."""
        rows = self.con.execute('SELECT trial_id, MAX(rung) FROM rung_results GROUP BY trial_id')
        return {int(r[0]): int(r[1]) for r in rows}

    # ------------------------------------------------------------------ final retrain
    def add_finals(self, trial_ids: Sequence[int]) -> None:
        """Queue the final retrain of these trials (once each: a resumed search keeps the
        choice it made)."""
        with self._tx():
            for tid in trial_ids:
                cur = self.con.execute(
                    'INSERT OR IGNORE INTO finals (trial_id, status) VALUES (?, ?)',
                    (tid, 'queued'),
                )
                if cur.rowcount:
                    self._event('final_queued', tid, {})

    def finals(self) -> List[Dict[str, Any]]:
        rows = self.con.execute('SELECT * FROM finals ORDER BY trial_id')
        out = []
        for r in rows:
            d = dict(r)
            d['result'] = json.loads(d['result']) if d['result'] else {}
            out.append(d)
        return out

    def start_final(self, trial_id: int) -> int:
        """Record a final retrain's dispatch before it is sent; returns its attempt."""
        with self._tx():
            n = 1 + int(
                self.con.execute(
                    'SELECT attempts FROM finals WHERE trial_id=?', (trial_id,)
                ).fetchone()[0]
            )
            self.con.execute(
                'UPDATE finals SET status=?, attempts=? WHERE trial_id=?',
                ('running', n, trial_id),
            )
            self._event('final_dispatch', trial_id, dict(attempt=n))
        return n

    def end_final(
        self,
        trial_id: int,
        attempt: int,
        outcome: str,
        metric: Optional[float] = None,
        result: Optional[Mapping[str, Any]] = None,
        error: Optional[str] = None,
        retry: bool = False,
    ) -> None:
        """A final retrain's outcome: ``complete``, queued again (``retry``) or ``failed``;
        ``lost`` (the controller died) counts as no failure."""
        status = 'complete' if outcome == 'ok' else ('queued' if retry else 'failed')
        failed = 0 if outcome in ('ok', 'lost') else 1
        blob = None if result is None else _dumps(dict(result))
        with self._tx():
            self.con.execute(
                'UPDATE finals SET status=?, failures=failures+?, metric=?, result=?, error=? '
                'WHERE trial_id=?',
                (status, failed, metric, blob, error, trial_id),
            )
            self._event(
                'final_end',
                trial_id,
                dict(
                    attempt=attempt,
                    outcome=outcome,
                    metric=metric,
                    error=error,
                    status=status,
                    result_digest=_digest(blob),
                ),
            )

    def compute_epochs(self) -> Tuple[float, float]:
        """``(spent, in flight)`` epochs over every attempt: a finished attempt counts the
        epochs it added (what its worker reported), a failed or lost one the epochs it was
        sent to train (its work is gone), an open one its planned epochs, and a ``halted``
        one nothing (it failed through the executor or the data, not by training)."""
        spent = inflight = 0.0
        for r in self.con.execute(
            'SELECT a.outcome, r.start_epochs, r.target_epochs, r.epochs_trained FROM '
            'attempts a JOIN rung_attempts r ON a.trial_id=r.trial_id AND a.attempt=r.attempt'
        ):
            planned = (r['target_epochs'] or 0) - r['start_epochs']
            if r['outcome'] is None:
                inflight += planned
            elif r['outcome'] == 'halted':
                continue
            elif r['outcome'] == 'ok' and r['epochs_trained'] is not None:
                spent += r['epochs_trained']
            else:
                spent += planned
        return spent, inflight

    def attempts(self, trial_id: int) -> List[Dict[str, Any]]:
        rows = self.con.execute(
            'SELECT * FROM attempts WHERE trial_id=? ORDER BY attempt', (trial_id,)
        )
        return [dict(r) for r in rows]

    def trial(self, trial_id: int) -> PoolTrial:
        row = self.con.execute('SELECT * FROM trials WHERE id=?', (trial_id,)).fetchone()
        if row is None:
            raise KeyError(f'no trial {trial_id} in {self.path}')
        return PoolTrial.from_row(row)

    def trial_by_hash(self, arch_hash: str) -> Optional[PoolTrial]:
        row = self.con.execute('SELECT * FROM trials WHERE arch_hash=?', (arch_hash,)).fetchone()
        return None if row is None else PoolTrial.from_row(row)

    def trials(self, status: Optional[Sequence[str]] = None) -> List[PoolTrial]:
        if status:
            marks = ','.join('?' * len(status))
            rows = self.con.execute(
                f'SELECT * FROM trials WHERE status IN ({marks}) ORDER BY id', tuple(status)
            )
        else:
            rows = self.con.execute('SELECT * FROM trials ORDER BY id')
        return [PoolTrial.from_row(r) for r in rows]

    def count(self, status: Sequence[str], exclude_origin: Optional[str] = None) -> int:
        """How many trials have one of ``status`` (cheap: no row is decoded)."""
        marks = ','.join('?' * len(status))
        q = f'SELECT COUNT(*) FROM trials WHERE status IN ({marks})'
        args: List[Any] = list(status)
        if exclude_origin:
            q += ' AND origin NOT LIKE ?'
            args.append(exclude_origin + '%')
        return int(self.con.execute(q, args).fetchone()[0])

    def columns(self, cols: str, status: Sequence[str]) -> List[sqlite3.Row]:
        """Some columns of the trials with one of ``status`` (no JSON decoded)."""
        marks = ','.join('?' * len(status))
        return self.con.execute(
            f'SELECT {cols} FROM trials WHERE status IN ({marks}) ORDER BY id', tuple(status)
        ).fetchall()

    def counts(self) -> Dict[str, int]:
        rows = self.con.execute('SELECT status, COUNT(*) FROM trials GROUP BY status')
        out = {s: 0 for s in TRIAL_STATUSES}
        out.update({r[0]: int(r[1]) for r in rows})
        return out

    # ------------------------------------------------------------------ optimiser states
    def save_optimizer(
        self, budget_idx: int, state: Mapping[str, Any], trials: Iterator[Mapping[str, Any]]
    ) -> None:
        """The optimiser's small state and the trials it changed, in one transaction."""
        with self._tx():
            self.con.execute(
                'INSERT OR REPLACE INTO optimizer_state VALUES (?, ?)', (budget_idx, _dumps(state))
            )
            rows = [(budget_idx, int(t['id']), _dumps(t)) for t in trials]
            self.con.executemany('INSERT OR REPLACE INTO optimizer_trials VALUES (?, ?, ?)', rows)
            self._optimizer_event(budget_idx, _dumps(state), rows)

    def load_optimizer(self, budget_idx: int) -> Optional[Dict[str, Any]]:
        """The optimiser's state with its trials, or None before its first save."""
        row = self.con.execute(
            'SELECT state FROM optimizer_state WHERE budget_idx=?', (budget_idx,)
        ).fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        rows = self.con.execute(
            'SELECT data FROM optimizer_trials WHERE budget_idx=? ORDER BY opt_id', (budget_idx,)
        )
        state['trials'] = [json.loads(r[0]) for r in rows]
        return state


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, then the head file; on error (the ``COMMIT``'s
    own included: a full disk fails it) ``ROLLBACK`` and the chain head restored, so the
    journal holds the change whole or not at all. A full disk is raised as
    :class:`JournalWriteError` naming the file; a head file that could not be replaced
    after the commit is only behind, which :meth:`SearchJournal.open` accepts."""

    def __init__(self, journal: SearchJournal) -> None:
        self.journal = journal

    def __enter__(self) -> sqlite3.Connection:
        self.head = (self.journal._last_seq, self.journal._last_hash)
        try:
            self.journal.con.execute('BEGIN IMMEDIATE')
        except Exception as e:
            self._raise_full(e, self.journal.path)
            raise
        return self.journal.con

    def __exit__(self, exc_type, exc, tb) -> None:
        j = self.journal
        if exc_type is None:
            try:
                j.con.execute('COMMIT')
            except Exception as e:
                self._rollback()
                self._raise_full(e, j.path)
                raise
            if j._last_seq != self.head[0]:  # after the commit: never ahead of the database
                try:
                    _write_head(j.path, j._last_seq, j._last_hash)
                except Exception as e:
                    self._raise_full(e, head_path(j.path), 'the change itself is committed')
                    raise
        else:
            self._rollback()
            if isinstance(exc, Exception):
                self._raise_full(exc, j.path)

    def _rollback(self) -> None:
        """Undo the open transaction (SQLite may have rolled it back itself: on a full disk
        it can), and the chain head with it."""
        j = self.journal
        if j.con.in_transaction:
            j.con.execute('ROLLBACK')
        j._last_seq, j._last_hash = self.head

    @staticmethod
    def _raise_full(exc: Exception, path: str, state: str = 'the change was rolled back') -> None:
        full = disk_full(exc)
        if full is not None:
            raise JournalWriteError(
                f'the search journal {path} could not be written ({full.error}); {state}', path
            ) from exc


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(_dumps(config).encode()).hexdigest()[:16]


def config_diff(old: Any, new: Any, prefix: str = '') -> List[str]:
    """Dotted keys whose values differ between two JSON-like configs."""
    old, new = json.loads(_dumps(old)), json.loads(_dumps(new))
    if isinstance(old, dict) and isinstance(new, dict):
        out: List[str] = []
        for k in sorted(set(old) | set(new)):
            p = f'{prefix}.{k}' if prefix else str(k)
            if k not in old or k not in new:
                out.append(p)
            else:
                out.extend(config_diff(old[k], new[k], p))
        return out
    return [] if old == new else [prefix or '<root>']
