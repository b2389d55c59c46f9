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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Set, Tuple

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
