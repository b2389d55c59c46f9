"""Failures that every attempt would repeat, told apart from a candidate's own.

A candidate's failure (its architecture runs out of memory, its loss diverges, its
training raises) is retried up to ``nas.max_attempts`` and then recorded: the search goes
on with the others. A failure that is not the candidate's (the Ray cluster is gone, the
data is missing, a broken install) fails every later attempt the same way: going on would
fail every remaining candidate for nothing, charge their epochs to ``nas.compute_budget``
and tell the optimisers that good architectures failed. The controller stops on it
instead (``SearchController._halt``), and ``--resume`` trains those candidates once the
cause is fixed.

Two signs, both read from facts the journal keeps:

* the executor names the cause (``TrialOutcome.systemic``,
  :func:`gpunet_mm.search.executor.systemic_cause`): stop at the first such failure;
* a *run*: the newest ended attempts, since the last success, all raised the same error
  (:func:`error_signature`) and come from ``nas.max_consecutive_failures`` distinct
  candidates. Only plain errors count: an out-of-memory, a NaN or a timeout is the
  candidate's size or schedule, never the setup's.

A full disk is such a cause wherever the search writes (a worker's checkpoint, the journal,
the latency cache, the reports): :func:`disk_full` is the one test of "this error means the
disk is full", :func:`disk_full_reason` the one sentence the user reads. A worker's full
disk halts the search at its first attempt (through ``systemic_cause``); the controller's
own failed write (rolled back by the journal) halts it too, and ``--resume`` continues
once space is freed.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

#: the outcome kinds a run of identical failures is made of
RUN_OUTCOMES = ('error',)

_NUMBERS = re.compile(r'0x[0-9a-fA-F]+|[0-9a-fA-F]{12,}|\d+(\.\d+)?')
_SPACES = re.compile(r'\s+')


def error_signature(error: Optional[str]) -> str:
    """The part of an error text that two candidates failing for the same reason share:
    numbers, addresses and long hex ids (trial folders, pids, node ids, tensor sizes)
    replaced by ``#``, whitespace collapsed, the last 500 characters (the exception)."""
    text = _NUMBERS.sub('#', error or '')
    return _SPACES.sub(' ', text).strip()[-500:]


@dataclass
class FailureRun:
    """The newest ended attempts that failed alike, with no success between them."""

    signature: str
    error: str  # the newest one's text, as the worker raised it
    #: ``(trial_id, attempt)``, newest first
    attempts: List[Tuple[int, int]] = field(default_factory=list)

    @property
    def trials(self) -> Set[int]:
        return {t for t, _ in self.attempts}


def open_run(ends: Sequence[Mapping[str, Any]]) -> Optional[FailureRun]:
    """The run of identical plain errors the newest ended attempts ``ends`` (newest first,
    as :meth:`gpunet_mm.search.journal.SearchJournal.recent_ends` gives them) end with, or
    None when the newest one succeeded or failed otherwise."""
    if not ends or ends[0]['outcome'] not in RUN_OUTCOMES:
        return None
    sig = error_signature(ends[0]['error'])
    run = FailureRun(sig, ends[0]['error'] or '')
    for e in ends:
        if e['outcome'] not in RUN_OUTCOMES or error_signature(e['error']) != sig:
            break
        run.attempts.append((int(e['trial_id']), int(e['attempt'])))
    return run


def run_reason(run: FailureRun, k: int) -> str:
    """Why a run of ``k`` distinct candidates stops the search (the message's cause)."""
    return (
        f'{len(run.trials)} distinct candidates in a row failed with the same error and none '
        f'succeeded in between (nas.max_consecutive_failures={k}), so the cause is not the '
        f'candidates: {run.error[-600:]}'
    )


#: the errno values of "the disk is full": no space left, or the user's quota on it spent
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: the texts that say so when the errno is gone: SQLite's ``SQLITE_FULL`` message, and an
#: ``OSError`` that reached the controller as text (a Ray task's traceback, a torchrun
#: trial's stderr, a chain that pickling dropped)
DISK_FULL_TEXTS = (
    'database or disk is full',
    os.strerror(errno.ENOSPC),
    os.strerror(errno.EDQUOT),
)


@dataclass(frozen=True)
class DiskFull:
    """What :func:`disk_full` found: the error that said the disk is full and the file that
    could not be written (None when no exception of the chain names one)."""

    error: str
    path: Optional[str]
    errno: int = errno.ENOSPC

    def as_oserror(self, path: str) -> OSError:
        """An ``OSError`` with this errno naming ``self.path`` (else ``path``): what a
        worker raises so that the errno and the file survive the trip to the controller
        (pickling keeps an ``OSError``'s fields, not its ``__cause__``)."""
        said = os.strerror(self.errno)
        text = said if self.error.endswith(said) else self.error  # no "[Errno 28]" twice
        return OSError(self.errno, text, self.path or path)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling, outermost first."""
    seen: Set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _says_full(e: BaseException) -> Optional[int]:
    """The errno when ``e`` itself says the disk is full, else None."""
    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
        return int(e.errno)
    code = getattr(e, 'sqlite_errorcode', None)
    if isinstance(e, sqlite3.Error) and code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return errno.ENOSPC
    text = str(e)
    if os.strerror(errno.EDQUOT) in text:
        return errno.EDQUOT
    return errno.ENOSPC if any(t in text for t in DISK_FULL_TEXTS) else None


def disk_full(exc: BaseException) -> Optional[DiskFull]:
    """Whether ``exc`` means a write failed because the disk (or the quota on it) is full:
    errno ``ENOSPC``/``EDQUOT``, SQLite's ``SQLITE_FULL``, or their message, on ``exc`` or
    on any exception it was raised from or while handling (``__cause__``/``__context__``),
    so a wrapper (the latency cache's ``LatencyCacheError``, mmengine's) still counts. The
    path is the first ``filename`` an exception of the chain names (``OSError``'s, the
    journal's and the latency cache's errors set it), outermost first."""
    chain = list(_chain(exc))
    said = [(e, code) for e in chain for code in [_says_full(e)] if code is not None]
    if not said:
        return None
    e, code = said[-1]  # the innermost: the error itself, not a wrapper's retelling
    names = (getattr(c, 'filename', None) for c in chain)
    path = next((n for n in names if isinstance(n, (str, os.PathLike)) and str(n)), None)
    text = f'{type(e).__name__}: {e}'
    return DiskFull(text[-600:], None if path is None else os.fspath(path), code)


def disk_full_reason(exc: BaseException) -> Optional[str]:
    """The reason a full disk stops the search (naming the file and what to do), or None
    when ``exc`` is not a full disk (:func:`disk_full`)."""
    full = disk_full(exc)
    if full is None:
        return None
    where = f'could not write {full.path}' if full.path else 'a write failed'
    quota = ' (or raise your quota there)' if full.errno == errno.EDQUOT else ''
    return f'the disk is full: {where} ({full.error}); free space on that disk{quota}'
