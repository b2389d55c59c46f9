"""One budget's optimiser trials in the search journal: only what is the optimiser's own.

A search's outcomes have one owner, the pool trial (``trials`` table: status, metric,
latency). Each budget's store keeps, per trial of its optimiser, only what that optimiser
owns: which pool trial it is (``pool``: the pool's ``arch_hash``), its point ``x`` (the key
and the arch follow from it), the predicted cost it was asked with (or learnt with), the
order it learnt its outcome (``tell_index``) and whether it asked or added it
(``ask_index``, -1: added). The status, value and measured cost every optimiser sees are
read from the pool trial; changing a pool trial's metric is what every optimiser sees.

An optimiser learns finished trials by reading this store (:meth:`JournalTrialStore.unlearnt`,
run by ``Optimizer.learn`` before each ask and whenever the controller records a finish):
the pool trials that finished since, in the journal's order (``finished_seq``), told to the
trial of its own or added (a point another budget proposed, a reference, a warm start).
Nothing is fanned out or reconciled: a controller killed between a pool write and an
optimiser's commit has an optimiser that learns the rest when it is next asked.

The values a multi-fidelity search's optimiser models are a view of the journal too
(:meth:`JournalTrialStore.refresh`: the rung :meth:`~gpunet_mm.search.fidelity.Rungs.model_rung`
picks, the values :meth:`~gpunet_mm.search.fidelity.Rungs.model_values` gives).

The store's writes are buffered until :meth:`JournalTrialStore.commit`, which writes them
with the optimiser's own state (settings, RNG, adaptive state) in one journal transaction:
a controller killed between an ask and its commit resumes from the state before the ask and
asks the same again. Resuming is reopening (:func:`open_optimizer`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from ..nas.base import Trial
from ..nas.store import STATUSES, MemoryTrialStore
from .journal import SearchJournal

#: the fields of a stored optimiser trial (layout 2); a layout-1 row also has the outcome
OWN_FIELDS = ('id', 'x', 'pool', 'predicted_cost', 'ask_index', 'tell_index')


def pool_outcome(row: Mapping[str, Any]) -> Tuple[Optional[float], Dict[str, Any]]:
    """``(value, kwargs for tell)`` of a finished pool trial (a :meth:`finished_since` row):
    the metric of its first result (its first rung's with rungs, the optimisers learn a
    point once), its measured latency as the cost, a failure otherwise."""
    value = row.get('first_metric')
    if value is None and row['status'] == 'complete':
        value = row['metric']
    cost = row['latency_ms']
    if value is not None and math.isfinite(float(value)):
        return float(value), dict(cost=cost)
    return None, dict(cost=cost, failed=True, error=(row['error'] or row['status'])[:500])


class JournalTrialStore(MemoryTrialStore):
    """The trials of budget ``budget_idx``'s optimiser, kept in ``journal``.

    Args:
        journal: the search's journal.
        budget_idx: which optimiser.
        space: the optimiser's search space (decodes the stored points).
        arch_hash: ``arch dict -> the pool's hash`` (links an asked point to its pool trial).
        rungs: the multi-fidelity rungs (:class:`~gpunet_mm.search.fidelity.Rungs`), or None.
    """

    def __init__(
        self,
        journal: SearchJournal,
        budget_idx: int,
        space: Any,
        arch_hash: Callable[[Any], str],
        rungs: Optional[Any] = None,
    ) -> None:
        super().__init__()
        self.journal = journal
        self.budget_idx = int(budget_idx)
        self.space = space
        self.arch_hash = arch_hash
        self.rungs = rungs
        #: the rung the optimiser models at its last ask (0: the told values)
        self.model_rung = 0
        #: the rung results the joint model (``nas.fidelity.model='joint'``) was last fitted to
        self._joint_seen: Optional[tuple] = None
        self._dirty: Dict[int, Any] = {}
        self._pool: Dict[str, int] = {}  # pool arch_hash -> own trial id
        self._pool_of: Dict[int, Optional[str]] = {}  # own trial id -> pool arch_hash
        self._cursor = 0  # the last pool finish learnt (``finished_seq``)
        self._learning = False
        self._adding: Optional[str] = None  # the pool trial being added by unlearnt()
        #: whether the stored trials were of layout 1 (converted by :meth:`bind`)
        self.migrated = False
        state = journal.load_optimizer(self.budget_idx)
        self._rows: List[Dict[str, Any]] = [] if state is None else state.pop('trials', [])
        #: the optimiser's own state as last committed (None before the first commit)
        self.saved_state: Optional[Dict[str, Any]] = state

    # ---------------------------------------------------------------- opening
    def bind(self, opt: Any) -> None:
        """Build the stored trials for ``opt`` (built on this store): points from the rows,
        outcomes from their pool trials."""
        self.opt = opt
        finished = {r['arch_hash']: r for r in self.journal.finished_since(0)}
        rows = self._rows
        if rows and 'status' in rows[0]:
            rows, self.migrated = self._from_layout1(rows), True
        trials = []
        for i, d in enumerate(rows):
            try:
                if d['id'] != i:
                    raise ValueError(f'trial at position {i} has id {d["id"]}')
                x = np.asarray(d['x'], dtype=float)
                t = Trial(
                    id=i,
                    x=[float(v) for v in x],
                    key=self.space.key(x),
                    params=self.space.to_json(x),
                    predicted_cost=d['predicted_cost'],
                    ask_index=int(d['ask_index']),
                    tell_index=d['tell_index'],
                    obj=self.space.decode(x),
                )
                if t.tell_index is not None:
                    row = finished.get(d['pool'])
                    if row is None:
                        raise ValueError(
                            f'trial {i} was learnt from pool trial {d["pool"]!r}, which has not '
                            'finished'
                        )
                    value, kw = pool_outcome(row)
                    opt.set_outcome(t, value, kw.get('failed', False), kw['cost'], kw.get('error'))
            except (TypeError, KeyError, ValueError) as e:
                raise ValueError(
                    f'journal {self.journal.path}: the trials of optimiser {self.budget_idx} are '
                    f'invalid ({e})'
                ) from e
            trials.append(t)
            self._pool_of[i] = d['pool']
            if d['pool'] is not None:
                self._pool[d['pool']] = i
        self.replace(trials)
        if self.migrated:
            self._dirty = {t.id: t for t in trials}
        self._rows = []

    def _from_layout1(self, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Layout-1 rows (whole trial dicts) as layout 2: the outcome is dropped (the pool
        trial holds it) and each trial is linked to the pool trial at its point."""
        by_key: Dict[str, str] = {}
        for pt in self.journal.trials():
            try:
                x = self.space.canonical(self.space.encode(pt.arch)[None])[0]
            except (ValueError, KeyError, TypeError):
                continue  # outside the space (a reference)
            by_key.setdefault(self.space.key(x), pt.arch_hash)
        out = []
        for d in rows:
            if d.get('status') not in STATUSES:
                raise ValueError(
                    f'journal {self.journal.path}: the trials of optimiser {self.budget_idx} are '
                    f'invalid (trial {d.get("id")} status: got {d.get("status")!r}; allowed: '
                    f'{STATUSES})'
                )
            pool = by_key.get(d['key'])
            if pool is None and d['ask_index'] >= 0:
                pool = self.arch_hash(d['params'])  # its pool row was not written yet
            out.append(dict({k: d[k] for k in OWN_FIELDS if k != 'pool'}, pool=pool))
        return out

    # ---------------------------------------------------------------- reads
    def pool_of(self, trial_id: int) -> Optional[str]:
        """The pool trial (its ``arch_hash``) of one of this optimiser's trials."""
        return self._pool_of.get(trial_id)

    def unlearnt(self) -> Iterator[Tuple[str, Any, Optional[float], Dict[str, Any]]]:
        """The pool trials finished since the last one learnt, in the journal's order: told
        to the trial of its own, or added when its point is in the space and new."""
        self._learning = True
        try:
            for row in self.journal.finished_since(self._cursor):
                self._cursor = int(row['finished_seq'])
                value, kwargs = pool_outcome(row)
                own = self._pool.get(row['arch_hash'])
                if own is not None:
                    if self._trials[own].tell_index is None:
                        yield 'tell', self._trials[own], value, kwargs
                    continue
                try:
                    x = self.space.canonical(self.space.encode(row['arch'])[None])[0]
                except (ValueError, KeyError, TypeError):
                    continue  # e.g. a reference tier outside the search space
                if self.id_of(self.space.key(x)) is not None:
                    continue
                self._adding = row['arch_hash']
                try:
                    yield 'add', row['arch'], value, kwargs
                finally:
                    self._adding = None
        finally:
            self._learning = False

    def refresh(self) -> None:
        """With rungs: offer the values of the rung the optimiser should model (BOHB: the
        highest with ``min_observations`` results; rung 0: the told values), read from the
        journal's rung results of the trials this optimiser holds."""
        if self.rungs is None:
            return
        by_rung: Dict[int, Dict[str, float]] = {}
        for r in self.journal.rung_results():
            own = self._pool.get(r['arch_hash'])
            if own is not None and r['metric'] is not None:
                by_rung.setdefault(r['rung'], {})[self._trials[own].key] = float(r['metric'])
        k = self.rungs.model_rung({rung: len(v) for rung, v in by_rung.items()})
        self.model_rung = k
        # at rung 0 the told values are rung 0's, unless some points started higher up
        # (nas.fidelity.brackets): their first value is after another schedule, so the
        # model is then given rung 0's values only, as at any other rung
        mixed = any(p not in by_rung.get(0, {}) for v in by_rung.values() for p in v)
        features = None
        if self.rungs.model == 'joint' and (k or mixed):
            # the model that takes the rung as an input needs the points themselves; it is
            # a function of the rung results, so refitted only when they changed
            seen = tuple(sorted((r, p, v) for r, d in by_rung.items() for p, v in d.items()))
            if seen == self._joint_seen:
                return
            self._joint_seen = seen
            keys = {p for v in by_rung.values() for p in v}
            own = [t for t in self._trials if t.key in keys]
            F = self.space.features(np.array([t.x for t in own], dtype=float))
            features = {t.key: row for t, row in zip(own, F.tolist())}
        self._modelled = self.rungs.model_values(by_rung, k, features) if k or mixed else None

    def top_values(self) -> Dict[str, float]:
        """``pool arch_hash -> value at the top rung`` of every pool trial this store holds
        with a rung result, from the joint model (``nas.fidelity.model='joint'``): the
        measured value where the trial reached the top rung, else the model's prediction
        there, conditioned on the trial's own rung results (they are among its training
        points). Refitted first only if the rung results changed since the last fit (the
        same fit the optimiser is offered at its next ask). Empty with another ``model``
        or before the joint model starts (a rung above the first holds
        ``min_observations`` results).

        Why here: a promotion by the predicted top-rung value (``promote='joint'``) ranks
        with the very model the optimiser's values come from, not a second one."""
        if self.rungs is None or self.rungs.model != 'joint':
            return {}
        self.refresh()
        modelled = self._modelled or {}
        return {
            self._pool_of[t.id]: float(modelled[t.key])
            for t in self._trials
            if t.key in modelled and self._pool_of.get(t.id) is not None
        }

    # ---------------------------------------------------------------- writes
    def add(self, trial: Any) -> None:
        pool = self._adding if self._adding is not None else self.arch_hash(trial.params)
        super().add(trial)
        self._pool_of[trial.id] = pool
        if pool is not None:
            self._pool[pool] = trial.id

    def before_tell(self, trial: Any) -> None:
        if not self._learning:
            raise ValueError(
                f'tell trial {trial.id}: a search optimiser learns outcomes from its pool trial '
                '(record the outcome in the journal; the optimiser learns it at its next ask); '
                'ask/tell with values is for an optimiser on a MemoryTrialStore'
            )

    def _changed(self, trial: Any) -> None:
        self._dirty[trial.id] = trial

    def replace(self, trials: Any) -> None:
        super().replace(trials)
        self._dirty.clear()  # what the journal holds (or a restored backup of it)

    def commit(self, state: Dict[str, Any]) -> None:
        """Write the optimiser's state and its trials changed since the last commit (their
        own fields only), in one transaction."""
        rows = [
            dict(
                id=t.id,
                x=list(t.x),
                pool=self._pool_of.get(t.id),
                predicted_cost=t.predicted_cost,
                ask_index=t.ask_index,
                tell_index=t.tell_index,
            )
            for t in (self._dirty[i] for i in sorted(self._dirty))
        ]
        self.journal.save_optimizer(self.budget_idx, state, iter(rows))
        self._dirty.clear()
        self.saved_state = state


def open_optimizer(
    build: Callable[..., Any],
    journal: SearchJournal,
    budget_idx: int,
    space: Any,
    arch_hash: Callable[[Any], str],
    rungs: Optional[Any] = None,
) -> Any:
    """``build(store=...)`` with budget ``budget_idx``'s journal store, its saved state
    loaded (a resumed search's optimiser continues exactly where it was; a layout-1
    journal's trials are converted and written back at once)."""
    store = JournalTrialStore(journal, budget_idx, space, arch_hash, rungs)
    opt = build(store=store)
    store.bind(opt)
    if store.saved_state is not None:
        opt.load_state_dict(store.saved_state)
    if store.migrated:
        store.commit(opt.state_dict(with_trials=False))
    return opt


__all__ = ['JournalTrialStore', 'open_optimizer', 'pool_outcome', 'OWN_FIELDS']
