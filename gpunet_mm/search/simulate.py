"""``--simulate``: the controller's real code against virtual workers on a virtual clock.

Training is replaced by a surrogate objective and a sampled duration; everything else (the
optimisers, the journal with its fsyncs, the predictor, dispatch) runs for real. The time
the controller spends is charged to the virtual clock uncompressed, so a slow controller
shows up as idle workers and a low ``dispatch_efficiency`` (busy worker time over available
worker time). Hundreds of virtual workers cost no process each: a worker is a heap entry.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .executor import Executor, TrialOutcome, TrialTask


class SimulatedExecutor(Executor):
    """Virtual workers: each task ends after a sampled duration on the virtual clock.

    Args:
        objective: ``arch dict -> metric`` (the surrogate accuracy); with ``full_epochs``,
            a learning curve ``(arch dict, epochs, seed) -> metric``.
        num_workers: virtual workers.
        mean_trial_s: mean duration of a trial on the full schedule (lognormal, sigma
            ``duration_sigma``); an attempt that trains part of it (a rung) lasts that share.
        full_epochs: epochs of the full schedule. Given, each task may carry the rung
            contract of the real workers (payload ``epochs``, ``resume_from``) and its
            result carries ``epochs``, ``epochs_trained`` and a (virtual) ``checkpoint``.
        failure_rate: share of attempts that fail (an injected worker crash, at random per
            attempt), to exercise the retry path at scale. A ``crash``, not an ``error``:
            random losses are no run of identical errors (``gpunet_mm.search.faults``),
            which would stop the search as a fault of its setup.
        controller_s: None (default): the controller's real time is charged to the virtual
            clock (its speed on this host is part of what is simulated); a number: each
            controller step (each :meth:`charge`) costs exactly that many virtual seconds,
            whatever it really took, so two runs with the same seed are identical.
    """

    def __init__(
        self,
        objective: Callable[[Dict[str, Any]], float],
        num_workers: int,
        mean_trial_s: float = 60.0,
        duration_sigma: float = 0.3,
        failure_rate: float = 0.0,
        seed: int = 0,
        metric: str = 'metric',
        full_epochs: Optional[int] = None,
        controller_s: Optional[float] = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f'num_workers: got {num_workers!r}; allowed: integers >= 1')
        self.objective = objective
        self.num_workers = int(num_workers)
        self.mean_trial_s = float(mean_trial_s)
        self.sigma = float(duration_sigma)
        self.failure_rate = float(failure_rate)
        self.rng = np.random.default_rng(seed)
        self.metric = metric
        self.seed = int(seed)
        self.full_epochs = full_epochs
        if controller_s is not None and not (0 <= float(controller_s) < math.inf):
            raise ValueError(
                f'controller_s: got {controller_s!r}; allowed: None or a finite number >= 0'
            )
        self.controller_s = None if controller_s is None else float(controller_s)
        self.now = 0.0
        self._heap: List[Any] = []
        self._seq = 0
        self.busy_s = 0.0
        self.spans: List[Any] = []  # (start, end) of every attempt
        self.last_submit = 0.0

    # -------------------------------------------------------------- clock
    def clock(self) -> float:
        return self.now

    def charge(self, seconds: float) -> None:
        """Advance the clock by the controller's step: ``seconds`` (its real time), or the
        fixed ``controller_s`` when one was given."""
        step = seconds if self.controller_s is None else self.controller_s
        self.now += max(0.0, float(step))

    # -------------------------------------------------------------- executor
    @property
    def running(self) -> int:
        return len(self._heap)

    def submit(self, task: TrialTask) -> None:
        if self.running >= self.num_workers:
            raise RuntimeError('SimulatedExecutor: no free worker')
        mu = math.log(self.mean_trial_s) - self.sigma**2 / 2  # so the mean is mean_trial_s
        duration = float(self.rng.lognormal(mu, self.sigma))
        start, end = self._span(task)
        if self.full_epochs:
            duration *= (end - start) / self.full_epochs
        fail = self.rng.random() < self.failure_rate
        self._seq += 1
        heapq.heappush(self._heap, (self.now + duration, self._seq, task, duration, fail))
        self.spans.append((self.now, self.now + duration))
        if task.attempt == 1:
            self.last_submit = self.now

    def poll(self, timeout: float) -> List[TrialOutcome]:
        """Jump to the next completion (a virtual worker never makes anyone wait for real)."""
        if not self._heap:
            return []
        end = self._heap[0][0]
        self.now = max(self.now, end)
        out: List[TrialOutcome] = []
        while self._heap and self._heap[0][0] <= self.now:
            _, _, task, duration, fail = heapq.heappop(self._heap)
            self.busy_s += duration
            if fail:
                out.append(
                    TrialOutcome(
                        task.trial_id,
                        task.attempt,
                        'crash',
                        error='injected failure (simulate.failure_rate)',
                        busy_s=duration,
                    )
                )
            else:
                out.append(
                    TrialOutcome(
                        task.trial_id,
                        task.attempt,
                        'ok',
                        self._result(task, duration),
                        busy_s=duration,
                    )
                )
        return out

    def _span(self, task: TrialTask) -> Tuple[int, int]:
        """``(start, end)`` epochs of an attempt: from its ``resume_from`` checkpoint (or 0)
        to its payload's ``epochs`` (or the full schedule)."""
        if task.payload.get('final'):  # the final retrain: from scratch, its own schedule
            sched = (task.payload.get('final_schedule') or {}).get('train_cfg') or {}
            return 0, int(sched.get('max_epochs') or self.full_epochs or 0)
        end = task.payload.get('epochs') or self.full_epochs or 0
        ckpt = task.payload.get('resume_from')
        start = int(ckpt.rsplit('epoch_', 1)[1]) if ckpt else 0
        return start, int(end)

    def _result(self, task: TrialTask, duration: float) -> Dict[str, Any]:
        if self.full_epochs is None:
            return {self.metric: float(self.objective(task.arch)), 'train_wall_s': duration}
        start, end = self._span(task)
        # one seed per training run: its rungs are points of one learning curve (a final
        # retrain is another run of the same architecture)
        seed = self.seed * 100_003 + task.trial_id + (7919 if task.payload.get('final') else 0)
        value = float(self.objective(task.arch, float(end), seed))
        out: Dict[str, Any] = {self.metric: value, 'train_wall_s': duration}
        if task.payload.get('final'):
            out.update(epochs=end, epochs_trained=end)
        if 'epochs' in task.payload:  # the rung contract (nas.fidelity)
            out.update(
                epochs=end,
                epochs_trained=end - start,
                checkpoint=f'sim://trial_{task.trial_id}/epoch_{end}',
            )
        return out

    def dispatch_efficiency(self) -> float:
        """Busy worker time over available worker time while there was work to hand out:
        from the start until the search's last new trial was dispatched. The drain at the
        end (no trial left to start, a few retries aside) is not the controller's to fill."""
        end = self.last_submit
        if end <= 0:
            return self.utilisation()
        busy = sum(min(e, end) - min(s, end) for s, e in self.spans)
        return busy / (self.num_workers * end)

    def utilisation(self) -> float:
        """Busy worker time over the whole run, the final drain included."""
        return self.busy_s / max(1e-9, self.num_workers * self.now)


class SurrogateLatency:
    """The simulated target: a noisy-but-stable latency per architecture (never shares a
    device with the virtual trainings, so it may be called at any time)."""

    exclusive = True

    def __init__(self, latency_fn: Callable[[Any], float]) -> None:
        self.latency_fn = latency_fn

    def measure(self, archs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [dict(latency_ms=float(self.latency_fn(a)), backend='surrogate') for a in archs]
