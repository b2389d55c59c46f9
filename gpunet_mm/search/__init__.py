"""The distributed search (``tools/nas_search.py``): controller, journal, workers.

* :class:`SearchJournal`: storage of every trial, attempt and event (SQLite, WAL).
* :class:`SearchController`: proposes (the :mod:`gpunet_mm.nas` optimisers), measures the
  exact end-to-end latency, dispatches trainings, retries failures, resumes after a crash.
* executors: Ray tasks (:mod:`.ray_executor`), virtual workers (:mod:`.simulate`), in-process
  (:class:`LocalExecutor`).
* :func:`~gpunet_mm.search.api.run_search`: all of it from a search config (``configs/nas/``).

This package imports neither torch nor Ray at import time; the workers and the latency
service import them where they run.
"""

from .controller import ControllerOptions, SearchController, SearchError
from .executor import Executor, LocalExecutor, TrialOutcome, TrialTask
from .journal import JournalError, PoolTrial, SearchJournal

__all__ = [
    'ControllerOptions',
    'Executor',
    'JournalError',
    'LocalExecutor',
    'PoolTrial',
    'SearchController',
    'SearchError',
    'SearchJournal',
    'TrialOutcome',
    'TrialTask',
]
