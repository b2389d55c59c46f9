"""The search server: proposes, measures, dispatches, records; survives its own death.

The controller owns no state that the journal does not hold. Each step is written to the
journal before it is acted on, so a controller killed at any instant (``kill -9``) resumes
from the journal: finished trials are kept (never re-trained), trials that were running
are dispatched again, the optimisers are rebuilt from their stored states and ask exactly
what they would have asked.

Rooms and doors:

* optimisers (:mod:`gpunet_mm.nas`): one per latency budget, ``ask``/``tell`` only;
* the journal (:class:`SearchJournal`): every trial, attempt and event;
* a latency service: ``measure(archs) -> [dict(latency_ms=...)]``, the exact end-to-end
  latency on the target; ``exclusive`` says whether it owns its device (else it is only
  called while no training runs, so trainings never disturb a timing);
* an :class:`Executor`: trains (Ray workers, the simulator, or in-process).

One pool, many budgets: every trained architecture is told to every budget's optimiser
(an optimiser that did not propose it learns it through ``add_trial``), and each new
proposal comes from the budget that has the fewest architectures within it so far.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .executor import Executor, TrialOutcome, TrialTask
from .journal import FINISHED, PoolTrial, SearchJournal

logger = logging.getLogger('gpunet_mm.search')


class SearchError(RuntimeError):
    """The search cannot go on (the message says why and what to change)."""


@dataclass
class ControllerOptions:
    num_trials: int
    max_attempts: int = 2
    trial_timeout_s: Optional[float] = None
    lease_s: float = 600.0
    propose_ahead: int = 0
    ask_batch: int = 8
    #: refill the look-ahead queue only once this many proposals are missing from it (unless
    #: a free worker would wait): the points of one ask share a model fit, so a controller
    #: serving hundreds of workers asks for many at once instead of one per finished trial
    ask_min: int = 1
    poll_s: float = 1.0
    max_infeasible_ratio: float = 10.0
    payload: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.num_trials, int) or self.num_trials < 1:
            raise ValueError(f'num_trials: got {self.num_trials!r}; allowed: integers >= 1')
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f'max_attempts: got {self.max_attempts!r}; allowed: integers >= 1')
        for name in ('ask_batch', 'ask_min'):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f'{name}: got {v!r}; allowed: integers >= 1')


def _brief(t: PoolTrial, **extra: Any) -> Dict[str, Any]:
    """A trial as the summary names it (best per budget, references)."""
    return dict(
        trial_id=t.id, arch_hash=t.arch_hash, latency_ms=t.latency_ms, metric=t.metric, **extra
    )


class SearchController:
    """Runs one search to its end (or its death) against a journal.

    Args:
        journal: where everything is recorded (created or opened by the caller).
        optimizers: one per budget, built with the calibrated predictor as ``constraint_fn``.
        budgets: latency budgets in ms, one per optimiser.
        executor: runs trainings.
        latency: the latency service (see module docstring).
        arch_hash: ``arch dict -> stable hash`` (the pool's identity of an architecture).
        metric: the result key to maximise (e.g. ``'coco/bbox_mAP'``).
        on_update: called after every change with the controller (progress display).
    """

    def __init__(
        self,
        journal: SearchJournal,
        optimizers: Sequence[Any],
        budgets: Sequence[float],
        executor: Executor,
        latency: Any,
        arch_hash: Callable[[Dict[str, Any]], str],
        metric: str,
        options: ControllerOptions,
        on_update: Optional[Callable[[SearchController], None]] = None,
    ) -> None:
        if len(optimizers) != len(budgets) or not budgets:
            raise ValueError('one optimiser per budget, at least one budget')
        if list(budgets) != sorted(budgets):
            raise ValueError(f'budgets: got {list(budgets)}; allowed: ascending order')
        self.journal = journal
        self.optimizers = list(optimizers)
        self.budgets = [float(b) for b in budgets]
        self.executor = executor
        self.latency = latency
        self.arch_hash = arch_hash
        self.metric = metric
        self.opts = options
        self.on_update = on_update
        #: pool trial id -> [(budget index, optimiser trial id)] still waiting for its outcome
        self.waiters: Dict[int, List[Tuple[int, int]]] = {}
        self.controller_cpu_s = 0.0
        self.controller_wall_s = 0.0
        self.started = executor.clock()
        self._last_renew = 0.0
        self._infeasible_streak = 0
        self.latest: List[int] = []  # pool ids, most recently finished last
        self.stop_reason: Optional[str] = None
        #: refitted from every measurement (:class:`~gpunet_mm.deploy.refit.RefitPredictor`)
        self.latency_model: Optional[Any] = None

    # ------------------------------------------------------------------ bookkeeping
    def _save_opt(self, b: int, trials: Sequence[Any]) -> None:
        opt = self.optimizers[b]
        self.journal.save_optimizer(
            b, opt.state_dict(with_trials=False), (t.to_dict() for t in trials)
        )

    def committed(self) -> int:
        """Training slots the search has spent or promised (the trial budget's count)."""
        return self.journal.count(
            ('queued', 'running', 'complete', 'failed'), exclude_origin='warm'
        )

    def best(self, budget: float) -> Optional[PoolTrial]:
        """The most accurate complete trial within ``budget`` (ties: faster, then older)."""
        rows = [
            r
            for r in self.journal.columns('id, metric, latency_ms', ('complete',))
            if r['metric'] is not None and r['latency_ms'] is not None and r['latency_ms'] <= budget
        ]
        if not rows:
            return None
        r = max(rows, key=lambda r: (r['metric'], -r['latency_ms'], -r['id']))
        return self.journal.trial(r['id'])

    def _cover(self) -> List[int]:
        """Architectures (trained or about to be) in each budget's band: latency above the
        next smaller budget and within this one. Counting everything within a budget would
        always favour the smallest one, whose set is nested in every other."""
        lat = [
            r[0]
            for r in self.journal.columns('latency_ms', ('queued', 'running', 'complete'))
            if r[0] is not None
        ]
        return self._bands(lat)

    def _bands(self, values: List[float]) -> List[int]:
        out, lower = [], float('-inf')
        for b in self.budgets:
            out.append(sum(1 for v in values if lower < v <= b))
            lower = b
        return out

    # ------------------------------------------------------------------ seeding
    def add_reference(self, name: str, arch: Dict[str, Any]) -> PoolTrial:
        """An architecture trained as a trial whatever the budgets (e.g. GPUNet-0)."""
        h = self.arch_hash(arch)
        found = self.journal.trial_by_hash(h)
        if found is not None:
            return found
        return self.journal.add_trial(h, arch, f'reference:{name}', None, None)

    def add_warm(
        self, source: str, arch: Dict[str, Any], metric: float, result: Dict[str, Any]
    ) -> Optional[PoolTrial]:
        """A candidate trained by an earlier search: only its latency is measured here."""
        h = self.arch_hash(arch)
        if self.journal.trial_by_hash(h) is not None:
            return None
        t = self.journal.add_trial(h, arch, f'warm:{source}', None, None)
        return self.journal.update_trial(
            t.id, 'warm_start', metric=float(metric), result=dict(result, warm_start=source)
        )

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        """Make the pool and the optimisers consistent after a (possibly violent) stop."""
        for b, opt in enumerate(self.optimizers):
            state = self.journal.load_optimizer(b)
            if state is not None:
                opt.load_state_dict(state)
        lost = self.journal.trials(('running',))
        for t in lost:
            self.journal.end_attempt(
                t.id, t.attempts, 'lost', 'the controller stopped; re-dispatched'
            )
            self.journal.update_trial(t.id, 'redispatch', status='queued', lease_until=None)
        if lost:
            logger.info(
                're-dispatching %d trial(s) that were running: %s', len(lost), [t.id for t in lost]
            )
        # pending optimiser trials wait for their pool trial; a proposal whose pool row
        # was not written before the stop is added now
        for b, opt in enumerate(self.optimizers):
            for ot in opt.pending:
                arch = ot.params
                h = self.arch_hash(arch)
                pt = self.journal.trial_by_hash(h)
                if pt is None:
                    pt = self.journal.add_trial(h, arch, f'optimizer:{b}', b, ot.predicted_cost)
                self.waiters.setdefault(pt.id, []).append((b, ot.id))
        # finished trials some optimiser has not heard of (a stop between two writes)
        for pt in self.journal.trials(FINISHED):
            self._tell_all(pt)

    # ------------------------------------------------------------------ proposing
    def _pick_budget(self, cover: List[int]) -> int:
        return min(range(len(self.budgets)), key=lambda b: (cover[b], b))

    def _propose(self, k: int) -> List[PoolTrial]:
        """Up to ``k`` new pool trials (status ``proposed``)."""
        new: List[PoolTrial] = []
        rounds = 0
        while len(new) < k and rounds < 20:
            rounds += 1
            cover = self._cover()
            # count this call's proposals too, so one batch spreads over the budgets
            extra = self._bands([t.predicted_ms for t in new if t.predicted_ms is not None])
            cover = [c + e for c, e in zip(cover, extra)]
            b = self._pick_budget(cover)
            opt = self.optimizers[b]
            n = min(k - len(new), max(1, self.opts.ask_batch))
            asked = opt.ask(n)
            self._save_opt(b, asked)
            for ot in asked:
                arch = ot.params
                h = self.arch_hash(arch)
                pt = self.journal.trial_by_hash(h)
                if pt is None:
                    pt = self.journal.add_trial(h, arch, f'optimizer:{b}', b, ot.predicted_cost)
                    new.append(pt)
                self.waiters.setdefault(pt.id, []).append((b, ot.id))
                if pt.status in FINISHED:
                    self._tell_all(pt)
        return new

    def _measure(self, trials: Sequence[PoolTrial]) -> None:
        """Exact latency of each, then ``queued`` (within a budget) or ``infeasible``."""
        if not trials:
            return
        try:
            results = self.latency.measure([t.arch for t in trials])
        except Exception as e:  # a broken latency service stops nothing already done
            for t in trials:
                pt = self.journal.update_trial(
                    t.id,
                    'latency_failed',
                    status='failed',
                    error=f'latency measurement failed: {e}',
                )
                self._tell_all(pt)
            return
        for t, r in zip(trials, results):
            lat = float(r['latency_ms'])
            reference = t.origin.startswith('reference')
            if self.latency_model is not None:  # proposals count in its error, seeds do not
                self.latency_model.observe(t.arch, lat, not t.origin.startswith('optimizer'))
            if t.origin.startswith('warm'):
                pt = self.journal.update_trial(
                    t.id, 'measured', status='complete', latency_ms=lat, latency=r
                )
            elif reference or lat <= max(self.budgets):
                pt = self.journal.update_trial(
                    t.id, 'measured', status='queued', latency_ms=lat, latency=r
                )
                self._infeasible_streak = 0
            else:
                pt = self.journal.update_trial(
                    t.id,
                    'measured',
                    status='infeasible',
                    latency_ms=lat,
                    latency=r,
                    error=f'measured {lat:.3f} ms > every budget {self.budgets}',
                )
                self._infeasible_streak += 1
            if pt.status in FINISHED:
                self._tell_all(pt)

    # ------------------------------------------------------------------ telling
    def _tell_all(self, pt: PoolTrial) -> None:
        """Tell a finished pool trial to every optimiser (once each)."""
        waiting = self.waiters.pop(pt.id, [])
        for b, opt in enumerate(self.optimizers):
            mine = [tid for bb, tid in waiting if bb == b]
            kwargs: Dict[str, Any] = dict(cost=pt.latency_ms)
            if pt.status == 'complete' and pt.metric is not None and math.isfinite(pt.metric):
                value = pt.metric
            else:
                value, kwargs['failed'] = None, True
                kwargs['error'] = (pt.error or pt.status)[:500]
            changed = []
            for tid in mine:
                if opt.trials[tid].status == 'pending':
                    changed.append(opt.tell(opt.trials[tid], value, **kwargs))
            if not mine:
                try:
                    x = opt.space.encode(pt.arch)
                except (ValueError, KeyError, TypeError):
                    continue  # e.g. a reference tier outside the search space
                if opt.is_new(opt.space.canonical(x[None])[0]):
                    changed.append(opt.add_trial(pt.arch, value, **kwargs))
            if changed:
                self._save_opt(b, changed)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        if self.executor.free <= 0:
            return
        for t in self.journal.trials(('queued',)):
            if self.executor.free <= 0:
                return
            if self.journal.failures(t.id) >= self.opts.max_attempts:
                self._fail(t, t.error or 'no attempts left')
                continue
            now = self.executor.clock()
            attempt = self.journal.start_attempt(t.id, now + self.opts.lease_s)
            self._charge()  # the controller's time so far delays this dispatch
            payload = dict(
                self.opts.payload,
                budget_ms=self.budgets[t.budget_idx] if t.budget_idx is not None else None,
                timeout_s=self.opts.trial_timeout_s,
            )
            self.executor.submit(TrialTask(t.id, attempt, t.arch, payload))

    def _fail(self, t: PoolTrial, error: str) -> None:
        pt = self.journal.update_trial(t.id, 'failed', status='failed', error=error[:2000])
        self._finished(pt)

    def _finished(self, pt: PoolTrial) -> None:
        self.latest.append(pt.id)
        self.latest = self.latest[-20:]
        self._tell_all(pt)

    def handle(self, o: TrialOutcome) -> None:
        t = self.journal.trial(o.trial_id)
        if t.status != 'running' or t.attempts != o.attempt:
            logger.info('ignoring a late outcome of trial %d attempt %d', o.trial_id, o.attempt)
            return
        outcome, error = o.outcome, o.error
        metric = o.result.get(self.metric) if outcome == 'ok' else None
        if outcome == 'ok':
            if metric is None:
                outcome, error = (
                    'error',
                    (
                        f'the evaluation returned no {self.metric!r}; it returned '
                        f'{sorted(k for k in o.result if "/" in k)}'
                    ),
                )
            elif not math.isfinite(float(metric)):
                outcome, error = 'nan', f'{self.metric} is {metric}'
        self.journal.end_attempt(t.id, o.attempt, outcome, error)
        if outcome == 'ok':
            pt = self.journal.update_trial(
                t.id,
                'complete',
                status='complete',
                metric=float(metric),
                result=o.result,
                lease_until=None,
                error=None,
            )
            self._finished(pt)
        elif self.journal.failures(t.id) < self.opts.max_attempts:
            logger.warning(
                'trial %d attempt %d: %s (%s); retrying',
                t.id,
                o.attempt,
                outcome,
                (error or '')[-300:],
            )
            self.journal.update_trial(
                t.id, 'retry', status='queued', lease_until=None, error=f'{outcome}: {error}'
            )
        else:
            logger.warning(
                'trial %d failed after %d attempt(s): %s (%s)',
                t.id,
                t.attempts,
                outcome,
                (error or '')[-300:],
            )
            self._fail(t, f'{outcome}: {error}')

    # ------------------------------------------------------------------ main loop
    def _need(self) -> int:
        return self.opts.num_trials - self.committed()

    def _fill(self) -> None:
        """Propose and measure what the free workers (and the look-ahead) need; dispatch.

        A latency service with a device of its own (``exclusive``) lets the controller hand
        out ready proposals first and propose their successors while the workers already
        train. A shared device (one CPU machine) is timed only in a window with no
        training running: everything is measured first, then dispatched.
        """
        exclusive = bool(getattr(self.latency, 'exclusive', False))
        if exclusive:
            self._dispatch()
        can_time = exclusive or self.executor.running == 0
        proposed = self.journal.trials(('proposed',))
        if proposed and can_time:
            self._measure(proposed)  # left over from a stop, or references/warm starts
            if exclusive:
                self._dispatch()
        queued = self.journal.count(('queued',))
        rounds = 0
        while can_time and rounds < 50:
            rounds += 1
            need = self._need()
            free = self.executor.free
            deficit = free + self.opts.propose_ahead - queued
            if deficit <= 0 or (queued >= free and deficit < min(self.opts.ask_min, need)):
                break
            want = min(need, deficit)
            if want <= 0:
                break
            new = self._propose(want)
            if not new:
                self.stop_reason = 'the optimisers proposed nothing new (space exhausted?)'
                break
            self._measure(new)
            if exclusive:
                self._dispatch()
            queued = self.journal.count(('queued',))
            limit = self.opts.max_infeasible_ratio * self.opts.num_trials
            if self.journal.count(('infeasible',)) > limit:
                raise SearchError(
                    f'more than {limit:.0f} proposals measured over every budget '
                    f'{self.budgets}: the latency predictor is far off on this target; '
                    'recalibrate it (predictor.calibrate) or raise the budgets'
                )
        self._dispatch()

    def _renew(self) -> None:
        now = self.executor.clock()
        if now - self._last_renew < self.opts.lease_s / 3:
            return
        self._last_renew = now
        ids = [r[0] for r in self.journal.columns('id', ('running',))]
        self.journal.renew_leases(ids, now + self.opts.lease_s)

    def done(self) -> bool:
        if self.executor.running or self.journal.count(('queued',)):
            return False
        return self._need() <= 0 or self.stop_reason is not None

    def run(self) -> Dict[str, Any]:
        self.journal.log('start', data=dict(budgets=self.budgets))
        self._mark()
        self.recover()
        self._notify()
        while True:
            self._fill()
            self._renew()
            self._notify()
            if self.done():
                self._charge()
                break
            self._charge()
            outcomes = self.executor.poll(self.opts.poll_s)
            self._mark()
            for o in outcomes:
                self.handle(o)
        self.journal.log('end', data=dict(reason=self.stop_reason or 'trials done'))
        self._notify()
        return self.summary()

    def _mark(self) -> None:
        """Start counting the controller's own time (after a wait for the workers)."""
        self._t_wall, self._t_cpu = time.perf_counter(), time.process_time()

    def _charge(self) -> None:
        """Account the controller's time since the last mark (the simulator's clock
        advances by it, so a dispatch happens when the controller got to it)."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.controller_wall_s += wall - self._t_wall
        self.controller_cpu_s += cpu - self._t_cpu
        self.executor.charge(wall - self._t_wall)
        self._t_wall, self._t_cpu = wall, cpu

    def _notify(self) -> None:
        if self.on_update is not None:
            self.on_update(self)

    # ------------------------------------------------------------------ results
    def summary(self) -> Dict[str, Any]:
        counts = self.journal.counts()
        best = {}
        for b in self.budgets:
            t = self.best(b)
            best[f'{b:g}'] = None if t is None else _brief(t, origin=t.origin)
        refs = {
            t.origin.split(':', 1)[1]: _brief(t, status=t.status)
            for t in self.journal.trials()
            if t.origin.startswith('reference:')
        }
        n_done = max(1, sum(1 for r in self.journal.columns('attempts', FINISHED) if r[0] > 0))
        return dict(
            trials_by_status=counts,
            best_per_budget=best,
            references=refs,
            budgets_ms=self.budgets,
            metric=self.metric,
            wall_s=self.executor.clock() - self.started,
            controller_cpu_s=self.controller_cpu_s,
            controller_cpu_s_per_trial=self.controller_cpu_s / n_done,
            stop_reason=self.stop_reason,
            journal_hash=self.journal.journal_hash,
        )
