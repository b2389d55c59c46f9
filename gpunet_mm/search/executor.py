"""What the controller needs from whoever runs the trainings: the narrow door to Ray.

The controller only submits :class:`TrialTask` s and polls :class:`TrialOutcome` s; Ray
(:mod:`gpunet_mm.search.ray_executor`), the virtual-clock simulator
(:mod:`gpunet_mm.search.simulate`) and the in-process executor of the tests all fit behind
it, so the controller's logic is tested without a cluster.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .faults import disk_full_reason

#: how an attempt ended. ``error``: the worker raised; ``nan``: the loss became NaN/inf;
#: ``timeout``: over the per-trial limit (cancelled); ``crash``: the worker process or its
#: node died (SIGKILL, out of memory, node lost); ``lost``: the controller died while it
#: ran (not the trial's fault: it does not count towards ``max_attempts``); ``halted``: a
#: failure that every attempt would repeat stopped the search (the executor is gone, the
#: data is missing, K distinct candidates failed alike): not the trial's fault, and no
#: compute (the journal's ``compute_epochs`` charges it nothing).
OUTCOMES = ('ok', 'error', 'nan', 'timeout', 'crash', 'lost', 'halted')


@dataclass
class TrialTask:
    """One training attempt: what a worker needs, JSON-able."""

    trial_id: int
    attempt: int
    arch: Dict[str, Any]
    payload: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialOutcome:
    trial_id: int
    attempt: int
    outcome: str
    result: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    busy_s: float = 0.0
    #: why the attempt failed when the cause is not the trial but something every attempt
    #: would hit (the executor or its cluster is gone, the data is missing); None: the
    #: trial's own failure (or a success). The controller stops the search on it.
    systemic: Optional[str] = None


class Executor(ABC):
    """Runs trainings on ``num_workers`` slots."""

    num_workers: int

    @abstractmethod
    def submit(self, task: TrialTask) -> None: ...

    @abstractmethod
    def poll(self, timeout: float) -> List[TrialOutcome]:
        """Outcomes finished since the last poll; waits up to ``timeout`` s for the first."""

    @property
    @abstractmethod
    def running(self) -> int: ...

    @property
    def free(self) -> int:
        return max(0, self.num_workers - self.running)

    def clock(self) -> float:
        """The time the search runs on (wall time; virtual in the simulator)."""
        return time.time()

    def charge(self, seconds: float) -> None:  # noqa: B027 (a no-op unless simulated)
        """The controller worked ``seconds`` (the simulator advances its clock)."""

    def shutdown(self) -> None:  # noqa: B027 (nothing to release by default)
        """Cancel what still runs."""

    def recovered(self, task: TrialTask) -> Optional[Dict[str, Any]]:
        """The result the worker of ``task`` left when it finished, for a controller that
        stopped before it journaled that result (``--resume`` then records it instead of
        training the attempt again), or None. The workers of
        ``gpunet_mm.search.worker`` leave it in the attempt's folder under the payload's
        ``work_dir``; a result that lived only in the stopped process is gone."""
        root = task.payload.get('work_dir')
        if not root:
            return None
        from .worker import saved_result

        return saved_result(root, task.trial_id, task.attempt)


def classify_exception(exc: BaseException) -> str:
    """Map a worker's exception to an outcome kind."""
    if isinstance(exc, FloatingPointError):
        return 'nan'
    if isinstance(exc, (TimeoutError,)):
        return 'timeout'
    if isinstance(exc, MemoryError) or type(exc).__name__ == 'OutOfMemoryError':
        return 'crash'  # torch's CUDA OOM is a RuntimeError: the candidate's size, not a bug
    return 'error'


#: Ray's exceptions (by class name, so that nothing here imports Ray) that say the cluster
#: itself is gone or broken, not a task: every later attempt fails the same way. A worker
#: that crashed (``WorkerCrashedError``, the OOM killer) or a node lost among many
#: (``NodeDiedError``) is the attempt's loss, retried as before.
SYSTEMIC_RAY_ERRORS = ('LocalRayletDiedError', 'RaySystemError', 'RayActorError')


def systemic_cause(exc: BaseException) -> Optional[str]:
    """Why ``exc`` is a failure every attempt would repeat (a reason to stop the search,
    naming the cause), or None when it may be the trial's own: Ray's cluster is gone
    (:data:`SYSTEMIC_RAY_ERRORS`), or the data is missing or broken
    (``gpunet_mm.apis.DatasetFilesError``, raised by the worker's check before it trains),
    or a disk is full (``gpunet_mm.search.faults.disk_full``: the next candidate's
    checkpoint would not fit either)."""
    full = disk_full_reason(exc)
    if full is not None:
        return full
    names = {c.__name__ for c in type(exc).__mro__}
    text = format_exception(exc, 600)
    if 'DatasetFilesError' in names:
        return f'the training data is not usable: {text}'
    hit = names.intersection(SYSTEMIC_RAY_ERRORS)
    if hit:
        return f'the Ray cluster that runs the trainings is gone or broken: {text}'
    return None


def format_exception(exc: BaseException, limit: int = 2000) -> str:
    text = ''.join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-limit:]


class LocalExecutor(Executor):
    """Runs each task in this process, one at a time, when polled (tests, debugging).

    Deterministic: tasks finish in submission order, which is what the resume tests need.
    """

    def __init__(self, fn: Callable[[TrialTask], Dict[str, Any]], num_workers: int = 1) -> None:
        self.fn = fn
        self.num_workers = int(num_workers)
        self._queue: List[TrialTask] = []

    def submit(self, task: TrialTask) -> None:
        if len(self._queue) >= self.num_workers:
            raise RuntimeError('LocalExecutor: no free slot')
        self._queue.append(task)

    @property
    def running(self) -> int:
        return len(self._queue)

    def poll(self, timeout: float) -> List[TrialOutcome]:
        if not self._queue:
            return []
        task = self._queue.pop(0)
        t0 = time.perf_counter()
        try:
            result = self.fn(task)
            return [
                TrialOutcome(
                    task.trial_id, task.attempt, 'ok', result, busy_s=time.perf_counter() - t0
                )
            ]
        except Exception as e:  # a worker's failure is data, not the controller's crash
            return [
                TrialOutcome(
                    task.trial_id,
                    task.attempt,
                    classify_exception(e),
                    error=format_exception(e),
                    busy_s=time.perf_counter() - t0,
                    systemic=systemic_cause(e),
                )
            ]
