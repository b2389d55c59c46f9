"""The search server: proposes, measures, dispatches, records; survives its own death.

The controller owns no state that the journal does not hold. Each step is written to the
journal before it is acted on, so a controller killed at any instant (``kill -9``) resumes
from the journal: finished trials are kept (never re-trained), trials that were running
are dispatched again, and the optimisers, whose trials live in the journal
(:class:`~gpunet_mm.search.trial_store.JournalTrialStore`), are reopened from it and ask
exactly what they would have asked.

Rooms and doors:

* optimisers (:mod:`gpunet_mm.nas`): one per latency budget, each asking through its
  journal store and learning the finished pool trials from it;
* the journal (:class:`SearchJournal`): every trial, attempt and event (the pool trial is
  the one owner of an outcome), and each optimiser's own part of its trials and state;
* a latency service: ``measure(archs) -> [dict(latency_ms=...)]``, the exact end-to-end
  latency on the target; ``exclusive`` says whether it owns its device (else it is only
  called while no training runs, so trainings never disturb a timing);
* an :class:`Executor`: trains (Ray workers, the simulator, or in-process).

One pool, many budgets: every finished architecture is learnt by every budget's optimiser
from its store (an optimiser that did not propose it adds it), and each new proposal comes
from the budget that has the fewest architectures within it so far.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..schema import NasSettings, defaults
from .executor import Executor, TrialOutcome, TrialTask, systemic_cause
from .faults import disk_full_reason, open_run, run_reason
from .fidelity import FINAL_DEFAULTS, Rungs
from .journal import FINISHED, PoolTrial, SearchJournal

logger = logging.getLogger('gpunet_mm.search')


class SearchError(RuntimeError):
    """The search cannot go on (the message says why and what to change)."""


class SearchHalted(SearchError):
    """A failure that every attempt would repeat stopped the search (the executor is gone,
    the data is missing, or ``nas.max_consecutive_failures`` distinct candidates failed
    alike): what finished is kept, the candidates it stopped are queued again, uncharged,
    and ``--resume`` trains them once the cause is fixed."""


def halt_message(reason: str, work_dir: str, requeued: int = 0) -> str:
    """What :class:`SearchHalted` says: the cause, that nothing finished is lost, what
    happened to the ``requeued`` candidates it stopped, and to continue with ``--resume``."""
    stopped = (
        f'{requeued} candidate(s) this stopped are queued again, not failed, and their '
        'attempts are not charged to the compute. '
        if requeued
        else ''
    )
    return (
        f'the search stopped: {reason}. Nothing that finished is lost (the journal in '
        f'{work_dir} keeps it). {stopped}Fix the cause, then continue the search with --resume'
    )


#: every ``nas`` key with its default; declared once, in :class:`gpunet_mm.schema.NasSettings`
#: (the multi-fidelity keys ``fidelity``, ``compute_budget``, ``final`` and
#: ``simulate.objective`` are checked further in gpunet_mm.search.fidelity.check_settings);
#: :class:`ControllerOptions` takes its defaults from it
NAS_DEFAULTS: Dict[str, Any] = defaults(NasSettings)
_NAS = NAS_DEFAULTS
#: the ``nas`` keys that are controller options of the same name
_FROM_NAS = (
    'num_trials',
    'max_attempts',
    'trial_timeout_s',
    'lease_s',
    'propose_ahead',
    'ask_batch',
    'ask_min',
    'compute_budget',
    'inherit',
    'max_consecutive_failures',
)


@dataclass
class ControllerOptions:
    """How the controller runs a search. The settings that are also ``nas`` keys take
    their defaults from the ``nas`` schema (one table); :meth:`from_nas` builds them from a
    checked ``nas`` dict."""

    num_trials: int
    max_attempts: int = _NAS['max_attempts']
    trial_timeout_s: Optional[float] = _NAS['trial_timeout_s']
    lease_s: float = _NAS['lease_s']
    propose_ahead: int = _NAS['propose_ahead']
    ask_batch: int = _NAS['ask_batch']
    #: refill the look-ahead queue only once this many proposals are missing from it (unless
    #: a free worker would wait): the points of one ask share a model fit, so a controller
    #: serving hundreds of workers asks for many at once instead of one per finished trial
    ask_min: int = _NAS['ask_min']
    poll_s: float = 1.0
    max_infeasible_ratio: float = 10.0
    payload: Dict[str, Any] = field(default_factory=dict)
    #: multi-fidelity rungs (``nas.fidelity``); None: every candidate trains to the end
    rungs: Optional[Rungs] = None
    #: epochs summed over every attempt after which nothing new starts (``nas.compute_budget``)
    compute_budget: Optional[float] = _NAS['compute_budget']
    #: epochs of the full proxy schedule (compute accounting without rungs; None: unknown)
    full_epochs: Optional[int] = None
    #: the final retrain (``nas.final``: ``top_k`` per budget on the full schedule)
    final: Optional[Dict[str, Any]] = None
    #: weight inheritance of new candidates (``nas.inherit``: ``parent_rung``,
    #: ``min_fraction``); None: every candidate starts from scratch
    inherit: Optional[Dict[str, Any]] = _NAS['inherit']
    #: stop the search when this many distinct candidates in a row failed with the same
    #: error, none succeeding between (gpunet_mm.search.faults); None: never on that sign
    max_consecutive_failures: Optional[int] = _NAS['max_consecutive_failures']

    def __post_init__(self) -> None:
        if not isinstance(self.num_trials, int) or self.num_trials < 1:
            raise ValueError(f'num_trials: got {self.num_trials!r}; allowed: integers >= 1')
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f'max_attempts: got {self.max_attempts!r}; allowed: integers >= 1')
        for name in ('ask_batch', 'ask_min'):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f'{name}: got {v!r}; allowed: integers >= 1')

    @classmethod
    def from_nas(cls, nas: Mapping[str, Any], **run: Any) -> ControllerOptions:
        """The options of a checked ``nas`` dict (:func:`gpunet_mm.search.api.nas_settings`)
        plus the run's own (``payload``, ``rungs``, ``full_epochs``, ``poll_s``, and
        ``final`` where the run resolves its schedule); else ``nas.final`` is completed with
        :data:`~gpunet_mm.search.fidelity.FINAL_DEFAULTS`."""
        given = {k: nas[k] for k in _FROM_NAS if k in nas}
        if 'final' not in run:
            final = nas.get('final')
            run['final'] = None if final is None else dict(FINAL_DEFAULTS, **final)
        return cls(**given, **run)


def _brief(t: PoolTrial, **extra: Any) -> Dict[str, Any]:
    """A trial as the summary names it (best per budget, references)."""
    return dict(
        trial_id=t.id, arch_hash=t.arch_hash, latency_ms=t.latency_ms, metric=t.metric, **extra
    )


class SearchController:
    """Runs one search to its end (or its death) against a journal.

    Args:
        journal: where everything is recorded (created or opened by the caller).
        optimizers: one per budget, built with the calibrated predictor as ``constraint_fn``
            and the journal's store of that budget (``trial_store.open_optimizer``).
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
        #: 'search', then 'final' while the top-k retrain (what the progress line shows)
        self.stage = 'search'
        #: when the final retrain started (``time.time()``), for its elapsed time and ETA
        self.final_t0: Optional[float] = None
        self.controller_cpu_s = 0.0
        self.controller_wall_s = 0.0
        self.started = executor.clock()
        self._last_renew = 0.0
        self._infeasible_streak = 0
        self.latest: List[int] = []  # pool ids, most recently finished last
        self.stop_reason: Optional[str] = None
        #: set when a failure every attempt would repeat stopped the search (``_halt``)
        self.halt_reason: Optional[str] = None
        self._halt_signature: Optional[str] = None  # the run's error, for the drain
        self._halted_trials: set = set()
        #: a trial may be held (:meth:`_held`); True at the start, for a resumed search
        self._holding = True
        self.model_rung = 0  # the rung the optimisers learnt from at the last ask
        #: refitted from every measurement (:class:`~gpunet_mm.deploy.refit.RefitPredictor`)
        self.latency_model: Optional[Any] = None

    # ------------------------------------------------------------------ bookkeeping
    def _save_opt(self, b: int) -> None:
        """Commit budget ``b``'s optimiser: its state and the trials it changed, at once."""
        opt = self.optimizers[b]
        opt.store.commit(opt.state_dict(with_trials=False))

    def committed(self) -> int:
        """Training slots the search has spent or promised (the trial budget's count)."""
        return self.journal.count(
            ('queued', 'running', 'complete', 'failed'), exclude_origin='warm'
        )

    def best(self, budget: float) -> Optional[PoolTrial]:
        """The most accurate complete trial within ``budget`` (ties: faster, then older).

        With rungs, only trials at the highest rung any of them reached compete: a metric
        after a short rung says nothing against one after the full schedule."""
        rows = [
            r
            for r in self.journal.columns('id, metric, latency_ms', ('complete',))
            if r['metric'] is not None and r['latency_ms'] is not None and r['latency_ms'] <= budget
        ]
        if not rows:
            return None
        top = self.journal.top_rungs() if self.opts.rungs is not None else {}
        r = max(rows, key=lambda r: (top.get(r['id'], 0), r['metric'], -r['latency_ms'], -r['id']))
        return self.journal.trial(r['id'])

    def comparable(self, winner: PoolTrial) -> List[PoolTrial]:
        """The trials whose metric compares with ``winner``'s (its Pareto neighbours are
        chosen among them): all of them, or with rungs only those at the winner's rung."""
        trials = self.journal.trials()
        if self.opts.rungs is None:
            return trials
        top = self.journal.top_rungs()
        return [t for t in trials if top.get(t.id, 0) == top.get(winner.id, 0)]

    # ------------------------------------------------------------------ compute
    def compute(self) -> Tuple[Optional[float], float]:
        """``(spent, in flight)`` epochs; ``spent`` is None when no attempt's epochs are
        known (no rungs and no ``train_cfg.max_epochs``)."""
        if self.opts.rungs is None and self.opts.full_epochs is None:
            return None, 0.0
        return self.journal.compute_epochs()

    def _reserved(self) -> float:
        """Epochs kept for the reference tiers to climb to the top rung: the yardstick the
        winners are compared with must be at their schedule, so its compute is counted from
        the start rather than left to whatever the budget has over at the end. Each
        reference reserves the rungs it has not spent, is not training and is not queued
        for; one that failed (or whose promotion failed for good) reserves nothing."""
        rungs = self.opts.rungs
        if rungs is None or self.opts.compute_budget is None:
            return 0.0
        rows = [
            r
            for r in self.journal.columns(
                'id, status, origin', ('proposed', 'queued', 'running', 'complete')
            )
            if r['origin'].startswith('reference')
        ]
        if not rows:
            return 0.0
        top = self.journal.top_rungs()
        promoted = self.journal.promotions()
        out = 0.0
        for r in rows:
            if r['status'] in ('queued', 'running'):  # that rung counts as queued / in flight
                committed = self.journal.target_rung(r['id'])
            else:
                committed = top.get(r['id'], -1)
                if (r['id'], committed + 1) in promoted:
                    continue  # complete below a rung it was promoted to: it failed there
            out += rungs.to_top(committed)
        return out

    def _left(self, reserve: bool = True) -> float:
        """Epochs of ``nas.compute_budget`` not yet spent, in flight or queued (and, with
        ``reserve``, not kept for the references: :meth:`_reserved`)."""
        if self.opts.compute_budget is None:
            return math.inf
        spent, inflight = self.compute()
        queued = 0.0
        rungs = self.opts.rungs
        top = self.journal.top_rungs() if rungs is not None else {}
        for r in self.journal.columns('id', ('queued',)):
            queued += (
                self._next_cost(r[0], top) if rungs is not None else (self.opts.full_epochs or 0)
            )
        left = self.opts.compute_budget - (spent or 0.0) - inflight - queued
        return left - self._reserved() if reserve else left

    def _next_cost(self, trial_id: int, top: Mapping[int, int]) -> float:
        """Epochs a queued trial's next attempt trains: from its highest finished rung (or
        from scratch: a new candidate, or one that starts at a later rung) to its target."""
        rungs = self.opts.rungs
        done = top.get(trial_id)
        return rungs.epochs[self.journal.target_rung(trial_id)] - (
            rungs.epochs[done] if done is not None else 0
        )

    def _affordable(self, epochs: float, reserve: bool = True) -> bool:
        """Whether ``epochs`` more fit in ``nas.compute_budget`` (with what is in flight and,
        with ``reserve``, what is kept for the references)."""
        return epochs <= self._left(reserve) + 1e-9

    def _first_cost(self) -> float:
        r = self.opts.rungs
        return float(r.epochs[0] if r is not None else (self.opts.full_epochs or 0))

    def rung_occupancy(self) -> List[int]:
        """How many trials finished each rung (empty without rungs)."""
        if self.opts.rungs is None:
            return []
        out = [0] * len(self.opts.rungs.epochs)
        for r in self.journal.rung_results():
            out[r['rung']] += 1
        return out

    def fidelity_status(self) -> str:
        """Rung occupancy and compute used / budget, for the progress line ('' if neither)."""
        parts = []
        occ = self.rung_occupancy()
        if occ:
            ep = '/'.join(str(e) for e in self.opts.rungs.epochs)
            parts.append(f'rungs {ep} ep: {"/".join(str(n) for n in occ)}')
        spent, inflight = self.compute()
        if spent is not None:
            budget = self.opts.compute_budget
            parts.append(
                f'compute {spent + inflight:g}'
                + (f'/{budget:g}' if budget is not None else '')
                + ' epochs'
            )
        return ', '.join(parts)

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
        """Continue after a (possibly violent) stop. The optimisers were reopened from the
        journal with their stores; what is left is the pool's: record what was running and
        finished before the stop (its worker's saved result, ``Executor.recovered``),
        re-dispatch the rest, and write the pool rows of proposals asked just before it."""
        lost, finished = [], []
        for t in self.journal.trials(('running',)):
            task = TrialTask(t.id, t.attempts, t.arch, dict(self.opts.payload))
            result = self.executor.recovered(task)
            if result is not None:  # it finished; only the journal's record of it was lost
                finished.append(TrialOutcome(t.id, t.attempts, 'ok', result))
                continue
            lost.append(t)
            self.journal.end_attempt(
                t.id, t.attempts, 'lost', 'the controller stopped; re-dispatched'
            )
            self.journal.update_trial(t.id, 'redispatch', status='queued', lease_until=None)
        if lost:
            logger.info(
                're-dispatching %d trial(s) that were running: %s', len(lost), [t.id for t in lost]
            )
        # a proposal whose pool row was not written before the stop is added now (the
        # optimisers learn what finished from their stores, reopened with them)
        for b, opt in enumerate(self.optimizers):
            for ot in opt.pending:
                if self.journal.trial_by_hash(opt.store.pool_of(ot.id)) is None:
                    self._add_proposal(b, ot)
        for o in finished:
            logger.info('trial %d attempt %d finished before the stop', o.trial_id, o.attempt)
            self.handle(o)

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
            asked = opt.ask(n)  # it learns the finished pool trials first (its store)
            self.model_rung = getattr(opt.store, 'model_rung', 0)
            self._save_opt(b)
            for ot in asked:
                pt = self.journal.trial_by_hash(opt.store.pool_of(ot.id))
                if pt is None:
                    new.append(self._add_proposal(b, ot))
        return new

    def _add_proposal(self, b: int, ot: Any) -> PoolTrial:
        """The pool trial of budget ``b``'s optimiser trial ``ot`` (its store names the hash)."""
        h = self.optimizers[b].store.pool_of(ot.id)
        return self.journal.add_trial(h, ot.params, f'optimizer:{b}', b, ot.predicted_cost)

    def _measure(self, trials: Sequence[PoolTrial]) -> None:
        """Exact latency of each, then ``queued`` (within a budget) or ``infeasible``."""
        if not trials:
            return
        try:
            results = self.latency.measure([t.arch for t in trials])
        except Exception as e:  # a broken latency service stops nothing already done
            cause = systemic_cause(e)
            if cause is not None:  # the service is gone: they are measured on --resume
                self._halt(f'the latency measurement failed: {cause}')
                return
            for t in trials:
                pt = self.journal.update_trial(
                    t.id,
                    'latency_failed',
                    status='failed',
                    error=f'latency measurement failed: {e}',
                )
                self._learn()
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
                self._learn()

    # ------------------------------------------------------------------ learning
    def _learn(self) -> None:
        """A pool trial finished: each optimiser learns it from its store now (not only at
        its next ask), so its adaptive state and the predicted costs of the points it adds
        are those of this moment, as they were when the controller told them."""
        for b, opt in enumerate(self.optimizers):
            if opt.learn():
                self._save_opt(b)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        if self.executor.free <= 0 or self.halt_reason is not None:
            return
        held = self._held()
        for t in self.journal.trials(('queued',)):
            if self.executor.free <= 0 or self.halt_reason is not None:
                return
            rungs = self.opts.rungs
            rung = self.journal.target_rung(t.id) if rungs is not None else 0
            if self._exhausted(t):
                if t.id not in held:
                    self._fail(t, t.error or 'no attempts left')
                continue
            extra: Dict[str, Any] = {}
            if rungs is None:
                span = (0, self.opts.full_epochs)
            else:
                prev = self.journal.rung_results(t.id)
                if not prev and not rung and t.attempts == 0:
                    rung = self._start(t)  # journalled before its dispatch
                below = [r for r in prev if r['rung'] < rung]
                resume = below[-1]['checkpoint'] if below else None
                span = (rungs.epochs[below[-1]['rung']] if below else 0, rungs.epochs[rung])
                extra = dict(epochs=span[1], resume_from=resume)
            if self.opts.inherit is not None and not extra.get('resume_from'):
                parent = self._parent(t)
                if parent is not None:
                    extra['inherit_from'] = parent
            now = self.executor.clock()
            attempt = self.journal.start_attempt(
                t.id,
                now + self.opts.lease_s,
                rung=rung,
                start_epochs=span[0],
                target_epochs=span[1],
            )
            self._charge()  # the controller's time so far delays this dispatch
            payload = dict(
                self.opts.payload,
                budget_ms=self.budgets[t.budget_idx] if t.budget_idx is not None else None,
                timeout_s=self.opts.trial_timeout_s,
                **extra,
            )
            try:
                self.executor.submit(TrialTask(t.id, attempt, t.arch, payload))
            except Exception as e:  # the executor refused it: gone (halt), or a bug (raise)
                cause = systemic_cause(e)
                if cause is None:
                    raise
                self._halt_trial(t.id, attempt, cause)
                self._halt(cause)
                return

    # ------------------------------------------------------------------ systemic failures
    def _exhausted(self, t: PoolTrial) -> bool:
        """Whether a queued trial has no attempt left (at its target rung)."""
        rung = self.journal.target_rung(t.id) if self.opts.rungs is not None else None
        return self.journal.failures(t.id, rung) >= self.opts.max_attempts

    def _failure_run(self) -> Any:
        """The run of identical plain errors the journal's newest ended attempts end with
        (:func:`gpunet_mm.search.faults.open_run`), or None."""
        k = self.opts.max_consecutive_failures
        if k is None:
            return None
        return open_run(self.journal.recent_ends(k * self.opts.max_attempts + 1))

    def _held(self) -> set:
        """Trials whose attempts are spent but that are not failed for good yet: their last
        failure is in the open run of identical errors, which may still turn out to be the
        setup's fault (then the search stops and they are trained on ``--resume``). A
        success or a different failure ends the run and they fail as before."""
        run = self._failure_run()
        return set() if run is None else run.trials

    def _waiting(self) -> int:
        """How many queued trials are held (:meth:`_held`) rather than waiting for a worker."""
        held = self._held()
        return sum(
            1 for t in self.journal.trials(('queued',)) if t.id in held and self._exhausted(t)
        )

    def _settle(self) -> None:
        """Fail for good the queued trials with no attempt left that no open run holds."""
        if not self._holding:
            return
        held = self._held()
        still = False
        for t in self.journal.trials(('queued',)):
            if self._exhausted(t):
                if t.id in held:
                    still = True
                else:
                    self._fail(t, t.error or 'no attempts left')
        self._holding = still

    def _release_holds(self) -> bool:
        """Nothing runs and nothing new starts: a held trial cannot wait for the run to
        end, so it fails as before (True if one did)."""
        if not self._holding:
            return False
        held = self._held()
        out = False
        for t in self.journal.trials(('queued',)):
            if t.id in held and self._exhausted(t):
                self._fail(t, t.error or 'no attempts left')
                out = True
        return out

    def _halt_trial(self, trial_id: int, attempt: int, reason: str) -> None:
        """An attempt stopped by a failure that is not its trial's: ``halted`` (no failure,
        no compute) and the trial queued again for ``--resume``."""
        self.journal.halt_attempt(trial_id, attempt, reason[:2000])
        self.journal.update_trial(
            trial_id, 'halted', status='queued', lease_until=None, error=f'halted: {reason}'[:2000]
        )
        self._halted_trials.add(trial_id)

    def _halt(self, reason: str) -> None:
        """Stop the search on a failure that every attempt would repeat: nothing new is
        proposed or dispatched, what still runs is waited for (its result is kept), the
        stop and its reason go to the journal, and :meth:`run` raises
        :class:`SearchHalted`."""
        if self.halt_reason is not None:
            return
        self.halt_reason = self.stop_reason = reason
        logger.error('stopping the search: %s', reason)
        try:
            self.journal.log('halt', data=dict(reason=reason[:2000]))
        except Exception as e:  # the disk is full: the stop is in the log, not the journal
            if disk_full_reason(e) is None:
                raise

    def _halt_message(self) -> str:
        import os.path as osp

        return halt_message(
            self.halt_reason or '',
            osp.dirname(osp.abspath(self.journal.path)),
            len(self._halted_trials),
        )

    def _parent(self, t: PoolTrial) -> Optional[Dict[str, Any]]:
        """``nas.inherit``: the candidate a new one inherits its weights from
        (``inherit_from`` of the payload), the one among those that finished
        ``parent_rung`` (the top rung; without rungs, the proxy schedule) whose checkpoint
        of that rung gives the largest share of the new backbone's weights
        (:func:`gpunet_mm.search.inherit.closest_parent`); None: none finished yet, or none
        gives ``min_fraction``. Chosen at dispatch from what the journal holds then."""
        from .inherit import check_parent_rung, closest_parent

        inh, rungs = self.opts.inherit, self.opts.rungs
        if rungs is None:
            done = [
                dict(trial_id=p.id, arch=p.arch, checkpoint=(p.result or {}).get('checkpoint'))
                for p in self.journal.trials(('complete',))
                if p.id != t.id
            ]
        else:  # a parent may be climbing further (queued or running) by now
            archs = {p.id: p.arch for p in self.journal.trials() if p.id != t.id}
            k = check_parent_rung(inh['parent_rung'], rungs)
            done = [
                dict(trial_id=r['trial_id'], arch=archs[r['trial_id']], checkpoint=r['checkpoint'])
                for r in self.journal.rung_results()
                if r['rung'] == k and r['trial_id'] in archs
            ]
        done = [d for d in done if d['checkpoint']]
        best = closest_parent(t.arch, done, inh['min_fraction'])
        if best is None:
            return None
        return dict(
            checkpoint=best['checkpoint'],
            arch=best['arch'],
            trial_id=best['trial_id'],
            fraction=round(best['fraction'], 4),
        )

    def _start(self, t: PoolTrial) -> int:
        """The rung a new candidate starts at (``nas.fidelity.brackets``; 0 with ``'asha'``,
        for the references and for anything not proposed for a budget). A start above the
        first is recorded as a promotion to that rung before the dispatch, so a resumed
        search keeps it; a start at the first records nothing (an undecided candidate is
        decided again from the same journal facts, with the same answer)."""
        rungs = self.opts.rungs
        if rungs.brackets == 'asha' or t.budget_idx is None or not t.origin.startswith('optimizer'):
            return 0
        started = self._started(t.budget_idx)
        left = self._left()  # counts this candidate's first rung already (it is queued)
        extra = [rungs.epochs[k] - rungs.epochs[0] for k in range(len(rungs.epochs))]
        highest = max(k for k, e in enumerate(extra) if k == 0 or e <= left + 1e-9)
        k = rungs.start_rung(
            self.journal.rung_results(), started, self.budgets[t.budget_idx], highest
        )
        if k:
            self.journal.promote(t.id, k)
        return k

    def _started(self, budget_idx: Optional[int] = None) -> List[int]:
        """The starting rung of every candidate (of ``budget_idx``'s optimiser, if given)
        that has been dispatched, in trial order."""
        starts = self.journal.start_rungs()
        return [
            starts.get(r['id'], 0)
            for r in self.journal.columns(
                'id, budget_idx, attempts', ('queued', 'running', 'complete', 'failed')
            )
            if r['attempts'] > 0 and (budget_idx is None or r['budget_idx'] == budget_idx)
        ]

    def _fail(self, t: PoolTrial, error: str) -> None:
        if self.opts.rungs is not None and self.journal.rung_results(t.id):
            # a promotion that failed: the trial keeps the rungs it finished
            pt = self.journal.update_trial(
                t.id, 'promotion_failed', status='complete', lease_until=None, error=error[:2000]
            )
            self._finished(pt)
            return
        pt = self.journal.update_trial(t.id, 'failed', status='failed', error=error[:2000])
        self._finished(pt)

    def _promote(self) -> None:
        """ASHA: give free workers the candidates in the top ``1/eta`` of their rung so far
        (per budget) before any new candidate. Each decision is in the journal (the trial
        queued for its next rung) before it is dispatched."""
        rungs = self.opts.rungs
        if rungs is None:
            return
        slots = self.executor.free - self.journal.count(('queued',))
        if slots <= 0:
            return
        status = {r['id']: r['status'] for r in self.journal.columns('id, status', ('complete',))}
        top = self.journal.top_rungs()
        always = {
            t.id for t in self.journal.trials(('complete',)) if t.origin.startswith('reference')
        }
        stretch = self._stretch()
        results = self.journal.rung_results()
        scores = None
        if rungs.promote == 'joint':  # each budget's rungs ranked by its store's joint model
            ids = {r['arch_hash']: int(r['trial_id']) for r in results}
            scores = [
                {ids[h]: v for h, v in opt.store.top_values().items() if h in ids}
                for opt in self.optimizers
            ]
        cands = rungs.promotable(
            results, self.journal.promotions(), self.budgets, always, stretch, scores
        )
        for tid, k in cands:
            if slots <= 0:
                break
            if status.get(tid) != 'complete' or top.get(tid) != k - 1:
                continue
            # in the final stretch a promotion pays only if the rest of its climb fits too
            need = rungs.to_top(k - 1) if stretch and tid not in always else rungs.cost(k)
            if not self._affordable(need, reserve=tid not in always):
                continue
            self.journal.promote(tid, k)
            slots -= 1

    def _stretch(self) -> bool:
        """The final stretch of ``nas.compute_budget``: what is left (after the references'
        reserve) no longer takes a new candidate to the top rung, so nothing new starts and
        the rest goes to promotions (:meth:`Rungs.promotable`'s ``stretch``)."""
        rungs = self.opts.rungs
        if rungs is None or self.opts.compute_budget is None or not rungs.final_stretch:
            return False
        return self._left() < rungs.to_top(-1) - 1e-9

    def _finished(self, pt: PoolTrial) -> None:
        self.latest.append(pt.id)
        self.latest = self.latest[-20:]
        self._learn()

    def handle(self, o: TrialOutcome) -> None:
        t = self.journal.trial(o.trial_id)
        if t.status != 'running' or t.attempts != o.attempt:
            logger.info('ignoring a late outcome of trial %d attempt %d', o.trial_id, o.attempt)
            return
        outcome, error = o.outcome, o.error
        if outcome != 'ok' and o.systemic:  # not the trial's failure: stop the search
            self._halt_trial(t.id, o.attempt, o.systemic)
            self._halt(o.systemic)
            return
        if outcome != 'ok' and self._halt_signature is not None:  # the run's error again
            from .faults import error_signature

            if error_signature(error) == self._halt_signature:
                self._halt_trial(t.id, o.attempt, self.halt_reason or '')
                return
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
        if outcome == 'ok' and self.opts.rungs is not None:
            self._complete_rung(t, o, float(metric))
            return
        self.journal.end_attempt(t.id, o.attempt, outcome, error)
        rung = self.journal.target_rung(t.id) if self.opts.rungs is not None else None
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
        elif self._run_stops(t):
            return
        elif self.journal.failures(t.id, rung) < self.opts.max_attempts:
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
        elif t.id in self._held():
            logger.warning(
                'trial %d attempt %d: %s (%s); no attempt left, but other candidates just '
                'failed alike: held until one does not',
                t.id,
                o.attempt,
                outcome,
                (error or '')[-300:],
            )
            self.journal.update_trial(
                t.id, 'hold', status='queued', lease_until=None, error=f'{outcome}: {error}'
            )
            self._holding = True
        else:
            logger.warning(
                'trial %d failed after %d attempt(s): %s (%s)',
                t.id,
                t.attempts,
                outcome,
                (error or '')[-300:],
            )
            self._fail(t, f'{outcome}: {error}')

    def _run_stops(self, t: PoolTrial) -> bool:
        """After a failure of ``t`` was recorded: if it completes a run of
        ``nas.max_consecutive_failures`` distinct candidates failing alike, every attempt of
        the run becomes ``halted`` (not failures, not compute), their trials are queued
        again and the search stops (True)."""
        run = self._failure_run()
        k = self.opts.max_consecutive_failures
        if run is None or k is None or len(run.trials) < k:
            return False
        status = {r['id']: r['status'] for r in self.journal.columns('id, status', ('failed',))}
        reason = run_reason(run, k)
        for tid, attempt in run.attempts:
            if tid in status:  # failed for good before this controller held runs
                continue
            self.journal.halt_attempt(tid, attempt, reason[:2000])
            self._halted_trials.add(tid)
        self.journal.update_trial(
            t.id, 'halted', status='queued', lease_until=None, error=f'halted: {reason}'[:2000]
        )
        self._halt_signature = run.signature
        self._halt(reason)
        return True

    def _complete_rung(self, t: PoolTrial, o: TrialOutcome, metric: float) -> None:
        rungs = self.opts.rungs
        rung = self.journal.target_rung(t.id)
        start, target = rungs.epochs[rung - 1] if rung else 0, rungs.epochs[rung]
        epochs = o.result.get('epochs', target)
        trained = o.result.get('epochs_trained', epochs - start)
        first = not self.journal.rung_results(t.id)
        pt = self.journal.complete_rung(
            t.id, o.attempt, rung, epochs, trained, metric, o.result, rung == rungs.last
        )
        if first:  # the optimisers learn the point at its first rung (later rungs: their stores)
            self._finished(pt)
        else:
            self.latest.append(pt.id)
            self.latest = self.latest[-20:]

    # ------------------------------------------------------------------ main loop
    def _need(self) -> int:
        need = self.opts.num_trials - self.committed()
        if need > 0 and self.opts.compute_budget is not None:
            fit = int((self._left() + 1e-9) // max(self._first_cost(), 1e-9))
            if self._stretch():
                fit = 0  # a new candidate could not reach the top rung: promotions only
            if fit <= 0 and self.executor.running == 0 and not self.journal.count(('queued',)):
                self.stop_reason = self.stop_reason or 'compute budget spent'
            need = min(need, fit)
        return need

    def _fill(self) -> None:
        """Propose and measure what the free workers (and the look-ahead) need; dispatch.

        A latency service with a device of its own (``exclusive``) lets the controller hand
        out ready proposals first and propose their successors while the workers already
        train. A shared device (one CPU machine) is timed only in a window with no
        training running: everything is measured first, then dispatched.
        """
        if self.halt_reason is not None:
            return
        exclusive = bool(getattr(self.latency, 'exclusive', False))
        self._settle()
        self._promote()
        if exclusive:
            self._dispatch()
        can_time = exclusive or self.executor.running == 0
        proposed = self.journal.trials(('proposed',))
        if proposed and can_time:
            self._measure(proposed)  # left over from a stop, or references/warm starts
            if exclusive:
                self._dispatch()
        # a held trial waits for its run of failures to end, not for a worker
        waiting = self._waiting() if self._holding else 0
        queued = self.journal.count(('queued',)) - waiting
        rounds = 0
        while can_time and rounds < 50 and self.halt_reason is None:
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
            queued = self.journal.count(('queued',)) - waiting
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
        if self.halt_reason is not None:  # stopped: done once what still runs has ended
            return not self.executor.running
        if self.executor.running or self.journal.count(('queued',)):
            return False
        return self._need() <= 0 or self.stop_reason is not None

    def run(self) -> Dict[str, Any]:
        with self._disk_guard():
            self.journal.log('start', data=dict(budgets=self.budgets))
        self._mark()
        with self._disk_guard():
            self.recover()
        self._notify()
        while True:
            with self._disk_guard():
                self._fill()
                if self.halt_reason is None and not self.executor.running and self._release_holds():
                    continue  # nothing could end the run of failures: its trials failed
                self._renew()
            self._notify()
            if self.done():
                self._charge()
                break
            self._charge()
            outcomes = self.executor.poll(self.opts.poll_s)
            self._mark()
            for o in outcomes:
                with self._disk_guard():  # one outcome's failed write loses no other
                    self.handle(o)
        with self._disk_guard():
            self.journal.log('end', data=dict(reason=self.stop_reason or 'trials done'))
        self._notify()
        if self.halt_reason is not None:
            raise SearchHalted(self._halt_message())
        if self.opts.final:
            with self._disk_guard():
                self.run_final()
            if self.halt_reason is not None:
                raise SearchHalted(self._halt_message())
        return self.summary()

    @contextlib.contextmanager
    def _disk_guard(self) -> Iterator[None]:
        """A full disk under the controller (the journal's write, rolled back; the latency
        cache's) stops the search (:meth:`_halt`) instead of ending it with a traceback:
        what still runs is waited for, and ``--resume`` continues once space is freed. A
        running attempt whose outcome could not be written stays ``running`` in the
        journal; ``--resume`` takes its worker's saved result, or trains it again."""
        try:
            yield
        except Exception as e:
            reason = disk_full_reason(e)
            if reason is None:
                raise
            self._halt(reason)

    # ------------------------------------------------------------------ final retrain
    def final_choice(self, top_k: int) -> List[int]:
        """The ``top_k`` of each budget, ranked as :meth:`best` ranks, each trial once."""
        rows = [
            r
            for r in self.journal.columns('id, metric, latency_ms', ('complete',))
            if r['metric'] is not None and r['latency_ms'] is not None
        ]
        top = self.journal.top_rungs() if self.opts.rungs is not None else {}
        out: List[int] = []
        for b in self.budgets:
            within = sorted(
                (r for r in rows if r['latency_ms'] <= b),
                key=lambda r: (-top.get(r['id'], 0), -r['metric'], r['latency_ms'], r['id']),
            )
            out.extend(r['id'] for r in within[:top_k] if r['id'] not in out)
        return out

    def run_final(self) -> None:
        """Train the top-k per budget on the base config's full schedule from scratch, so
        the search reports the detector the user gets next to the proxy number it ranked
        by. The choice and every outcome are in the journal first: a resumed search keeps
        the choice and re-trains only what did not finish."""
        fin = dict(self.opts.final or {})
        self.stage, self.final_t0 = 'final', time.time()
        if not self.journal.finals():
            self.journal.add_finals(self.final_choice(int(fin.get('top_k', 2))))
        for f in self.journal.finals():
            if f['status'] == 'running':  # the controller stopped while it trained
                self.journal.end_final(
                    f['trial_id'], f['attempts'], 'lost', error='re-dispatched', retry=True
                )
        inflight: Dict[int, int] = {}
        self._mark()
        while True:
            with self._disk_guard():
                for f in self.journal.finals():
                    if self.executor.free <= 0 or self.halt_reason is not None:
                        break
                    if f['status'] != 'queued' or f['trial_id'] in inflight:
                        continue
                    t = self.journal.trial(f['trial_id'])
                    attempt = self.journal.start_final(t.id)
                    inflight[t.id] = attempt
                    payload = dict(
                        self.opts.payload,
                        final=True,
                        final_schedule=fin.get('schedule'),
                        budget_ms=None,
                        timeout_s=self.opts.trial_timeout_s,
                    )
                    self.executor.submit(TrialTask(t.id, attempt, t.arch, payload))
            self._notify()
            if not inflight:
                break
            self._charge()
            outcomes = self.executor.poll(self.opts.poll_s)
            self._mark()
            for o in outcomes:
                if inflight.get(o.trial_id) != o.attempt:
                    continue
                del inflight[o.trial_id]
                with self._disk_guard():  # one outcome's failed write loses no other
                    self._end_final(o)
        self.journal.log('final_end', data={})

    def _end_final(self, o: TrialOutcome) -> None:
        """Record the outcome of a final retrain (a systemic failure: no failure, halt)."""
        if o.outcome != 'ok' and o.systemic:  # no failure: retrained on --resume
            self.journal.end_final(
                o.trial_id, o.attempt, 'lost', error=o.systemic[-2000:], retry=True
            )
            self._halted_trials.add(o.trial_id)
            self._halt(o.systemic)
            return
        metric = o.result.get(self.metric) if o.outcome == 'ok' else None
        if metric is not None and math.isfinite(float(metric)):
            self.journal.end_final(o.trial_id, o.attempt, 'ok', float(metric), o.result)
            return
        f = next(f for f in self.journal.finals() if f['trial_id'] == o.trial_id)
        self.journal.end_final(
            o.trial_id,
            o.attempt,
            o.outcome if o.outcome != 'ok' else 'error',
            error=(o.error or f'no finite {self.metric} in the result')[-2000:],
            retry=f['failures'] + 1 < self.opts.max_attempts,
        )

    def final_summary(self) -> Optional[Dict[str, Any]]:
        """Each final retrain next to its proxy number, and each budget's final winner."""
        fins = self.journal.finals()
        if not fins:
            return None
        top = self.journal.top_rungs() if self.opts.rungs is not None else {}
        rows = []
        for f in fins:
            t = self.journal.trial(f['trial_id'])
            rung = top.get(t.id)
            rows.append(
                _brief(
                    t,
                    proxy_metric=t.metric,
                    proxy_epochs=(
                        self.opts.rungs.epochs[rung] if rung is not None else self.opts.full_epochs
                    ),
                    final_metric=f['metric'],
                    final_epochs=(f['result'] or {}).get('epochs'),
                    status=f['status'],
                    origin=t.origin,
                )
            )
        winners = {}
        for b in self.budgets:
            done = [r for r in rows if r['final_metric'] is not None and r['latency_ms'] <= b]
            w = max(done, key=lambda r: (r['final_metric'], -r['latency_ms']), default=None)
            winners[f'{b:g}'] = w
        return dict(dict(self.opts.final or {}), runs=rows, winners=winners)

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
        top = self.journal.top_rungs() if self.opts.rungs is not None else {}
        refs = {
            t.origin.split(':', 1)[1]: _brief(
                t,
                status=t.status,
                # the schedule its metric is after (with rungs: the highest rung it reached;
                # the last line says when that is not the full proxy schedule)
                epochs=(self.opts.rungs.epochs[top[t.id]] if t.id in top else None)
                if self.opts.rungs is not None
                else self.opts.full_epochs,
            )
            for t in self.journal.trials()
            if t.origin.startswith('reference:')
        }
        n_done = max(1, sum(1 for r in self.journal.columns('attempts', FINISHED) if r[0] > 0))
        extra: Dict[str, Any] = {}
        spent, inflight = self.compute()
        extra['compute_epochs'] = None if spent is None else spent + inflight
        if self.opts.compute_budget is not None:
            extra['compute_budget'] = self.opts.compute_budget
        fin = self.final_summary()
        if fin is not None:
            extra['final'] = fin
        if self.opts.rungs is not None:
            started = self._started()
            extra['fidelity'] = dict(
                rung_epochs=list(self.opts.rungs.epochs),
                eta=self.opts.rungs.eta,
                rung_occupancy=self.rung_occupancy(),
                promotions=len(self.journal.promotions()) - len(self.journal.start_rungs()),
                brackets=self.opts.rungs.brackets,
                # candidates that started at each rung (all at the first with 'asha')
                start_rungs=[started.count(k) for k in range(len(self.opts.rungs.epochs))],
                model_rung=self.model_rung,
            )
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
            **extra,
        )
