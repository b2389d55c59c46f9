"""Where an optimiser's trials live: a store it writes through and reads a view of.

Optuna's split: the storage owns the trials; a sampler holds its settings, its RNG and a
little adaptive state, and reads the observations it needs (points, values, costs,
statuses) from the storage when asked. :class:`~gpunet_mm.nas.base.Optimizer` keeps no
trial list of its own: ``opt.trials`` is a read-only view of its store, and ``ask``,
``tell`` and ``add_trial`` write through the store.

Two stores have this interface: :class:`MemoryTrialStore` (the default, for library users
calling ``ask``/``tell`` without a search; it owns the outcomes it is told) and the search
journal's per-budget store (:class:`gpunet_mm.search.trial_store.JournalTrialStore`). That
one keeps only what is the optimiser's own (its points, the predicted cost each was asked
with, the order it learnt them) and reads every outcome from the search's pool trial: the
optimiser learns finished trials from it (:meth:`MemoryTrialStore.unlearnt`, run by
``Optimizer.learn`` before each ask) and models the values it offers
(:meth:`MemoryTrialStore.modelled_values`: a multi-fidelity search's rung). Resuming a
search is reopening its stores.
"""

from __future__ import annotations

from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    overload,
)

import numpy as np

STATUSES = ('pending', 'complete', 'failed', 'infeasible')


class TrialsView(Sequence):
    """A read-only sequence over a store's trials (no copy; ``view[i]`` is trial ``i``)."""

    __slots__ = ('_trials',)

    def __init__(self, trials: List[Any]) -> None:
        self._trials = trials

    @overload
    def __getitem__(self, i: int) -> Any: ...

    @overload
    def __getitem__(self, i: slice) -> List[Any]: ...

    def __getitem__(self, i):
        return self._trials[i]

    def __len__(self) -> int:
        return len(self._trials)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._trials)

    def __repr__(self) -> str:
        return f'TrialsView({len(self._trials)} trials)'


class MemoryTrialStore:
    """Trials in memory, in the order the optimiser learnt them (a trial's id is its index).

    The interface every store has: :meth:`view`, :meth:`id_of`, :meth:`add`, :meth:`told`,
    :meth:`replace`, :meth:`n_told`, and what a store that owns no outcomes overrides:
    :meth:`unlearnt` (outcomes to learn), :meth:`refresh` / :meth:`modelled_values` (the
    values to model), :meth:`before_tell` (refuse a tell). ``add`` and ``told`` are the
    only writes; a store backed by a database overrides ``_changed`` to persist them.
    """

    def __init__(self) -> None:
        self._trials: List[Any] = []
        self._keys: Dict[str, int] = {}
        self._n_told = 0
        self._modelled: Optional[Dict[str, float]] = None

    # ---------------------------------------------------------------- reads
    def view(self) -> TrialsView:
        """A read-only sequence over the trials (no copy): what ``opt.trials`` returns."""
        return TrialsView(self._trials)

    def id_of(self, key: str) -> Optional[int]:
        """The id of the trial at this point key, or None (never asked nor added)."""
        return self._keys.get(key)

    def n_told(self) -> int:
        """How many trials were told (the next one's ``tell_index``)."""
        return self._n_told

    def __len__(self) -> int:
        return len(self._trials)

    def unlearnt(self) -> Iterator[Tuple[str, Any, Optional[float], Dict[str, Any]]]:
        """Outcomes this store holds that its optimiser has not learnt, in the order to learn
        them: ``('tell', trial, value, kwargs)`` for a trial of its own, ``('add', obj,
        value, kwargs)`` for one evaluated elsewhere (``kwargs``: ``failed``, ``cost``,
        ``error``). None here: a library user tells the outcomes."""
        return iter(())

    def refresh(self) -> None:
        """Read what :meth:`modelled_values` offers anew (before an ask); nothing here."""

    def modelled_values(self) -> Optional[Dict[str, float]]:
        """Point key -> the value a model learns instead of the told one, or None (the told
        values). Why: a multi-fidelity search tells each point once, after its first
        (shortest) training, and trains the best points longer; a model learns from one
        fidelity at a time (BOHB: the highest rung with enough results). Only the points
        given are modelled; the others stay known, so they are never proposed again."""
        return self._modelled

    def set_modelled_values(self, values: Optional[Mapping[str, float]]) -> None:
        """Offer these values (point key -> value) to the model; None: the told values."""
        self._modelled = None if values is None else {str(k): float(v) for k, v in values.items()}

    # ---------------------------------------------------------------- writes
    def before_tell(self, trial: Any) -> None:
        """Called before a stored trial's outcome is set (a store may refuse the tell)."""

    def add(self, trial: Any) -> None:
        """Append a new trial (its ``id`` must be the next index)."""
        if trial.id != len(self._trials):
            raise ValueError(f'trial id {trial.id}: allowed: the next id {len(self._trials)}')
        self._trials.append(trial)
        self._keys[trial.key] = trial.id
        self._changed(trial)

    def told(self, trial: Any) -> None:
        """The outcome of a stored trial was set (``tell``)."""
        self._n_told += 1
        self._changed(trial)

    def replace(self, trials: Iterable[Any]) -> None:
        """Hold exactly these trials (a loaded state); ids must be 0, 1, ... in order."""
        trials = list(trials)
        for i, t in enumerate(trials):
            if t.id != i:
                raise ValueError(f'trial at position {i} has id {t.id}')
        self._trials = trials
        self._keys = {t.key: t.id for t in trials}
        self._n_told = sum(1 for t in trials if t.tell_index is not None)

    def _changed(self, trial: Any) -> None:
        """Hook for a persistent store: ``trial`` was added or told."""


def trials_from_dicts(space: Any, dicts: Iterable[Mapping[str, Any]]) -> List[Any]:
    """Stored trial dicts as :class:`~gpunet_mm.nas.base.Trial` (decoded, validated), or a
    ValueError naming the first bad one."""
    from .base import Trial

    out = []
    for i, d in enumerate(dicts):
        t = Trial.from_dict(d)
        if t.status not in STATUSES:
            raise ValueError(f'trial {t.id} status: got {t.status!r}; allowed: {STATUSES}')
        if t.id != i:
            raise ValueError(f'trial at position {i} has id {t.id}')
        t.obj = space.decode(np.asarray(t.x))
        out.append(t)
    return out


__all__ = ['MemoryTrialStore', 'TrialsView', 'STATUSES', 'trials_from_dicts']
