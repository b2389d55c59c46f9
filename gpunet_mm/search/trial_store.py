"""One budget's optimiser trials, kept in the search journal (the optimiser's store).

The optimiser of each budget reads its trials (points, values, costs, statuses, in the
order it learnt them) from this store and writes through it (:mod:`gpunet_mm.nas.store`);
nothing else holds them. Changes are buffered until :meth:`JournalTrialStore.commit`,
which writes them with the optimiser's own state (settings, RNG, adaptive state) in one
journal transaction: a controller killed between an ask and its commit resumes from the
state before the ask, with the trials that state knew, and asks the same again.

Resuming is reopening: the store reads its trials and the optimiser's saved state when it
is built (:func:`open_optimizer`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ..nas.store import MemoryTrialStore, trials_from_dicts
from .journal import SearchJournal


class JournalTrialStore(MemoryTrialStore):
    """The trials of budget ``budget_idx``'s optimiser, read from and written to ``journal``."""

    def __init__(self, journal: SearchJournal, budget_idx: int, space: Any) -> None:
        super().__init__()
        self.journal = journal
        self.budget_idx = int(budget_idx)
        self._dirty: Dict[int, Any] = {}
        state = journal.load_optimizer(self.budget_idx)
        #: the optimiser's own state as last committed (None before the first commit)
        self.saved_state: Optional[Dict[str, Any]] = None
        if state is not None:
            trials = state.pop('trials', [])
            try:
                self.replace(trials_from_dicts(space, trials))
            except (TypeError, KeyError, ValueError) as e:
                raise ValueError(
                    f'journal {journal.path}: the trials of optimiser {budget_idx} are invalid '
                    f'({e})'
                ) from e
            self.saved_state = state

    def _changed(self, trial: Any) -> None:
        self._dirty[trial.id] = trial

    def replace(self, trials: Any) -> None:
        super().replace(trials)
        self._dirty.clear()  # what the journal holds (or a restored backup of it)

    def commit(self, state: Dict[str, Any]) -> None:
        """Write the optimiser's state and the trials changed since the last commit, in one
        transaction."""
        rows = [self._dirty[i].to_dict() for i in sorted(self._dirty)]
        self.journal.save_optimizer(self.budget_idx, state, iter(rows))
        self._dirty.clear()
        self.saved_state = state


def open_optimizer(
    build: Callable[..., Any], journal: SearchJournal, budget_idx: int, space: Any
) -> Any:
    """``build(store=...)`` with budget ``budget_idx``'s journal store, its saved state
    loaded (a resumed search's optimiser continues exactly where it was)."""
    store = JournalTrialStore(journal, budget_idx, space)
    opt = build(store=store)
    if store.saved_state is not None:
        opt.load_state_dict(store.saved_state)
    return opt


__all__ = ['JournalTrialStore', 'open_optimizer']
