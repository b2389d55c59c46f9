"""The function a search worker runs for one attempt (a Ray task, or in-process)."""

from __future__ import annotations

import os.path as osp
from typing import Any, Dict


def trial_dir(root: str, trial_id: int, attempt: int) -> str:
    return osp.join(root, 'trials', f'{trial_id:04d}', f'attempt_{attempt}')


def run_trial(task: Dict[str, Any]) -> Dict[str, Any]:
    """Train and evaluate ``task['arch']`` with the search config ``task['cfg']``.

    ``task`` is what :class:`~gpunet_mm.search.executor.TrialTask` carries, flattened:
    ``trial_id``, ``attempt``, ``arch`` and the controller's payload (``cfg``, ``work_dir``,
    ``threads``).
    """
    from .trainer import train_candidate

    work_dir = trial_dir(task['work_dir'], int(task['trial_id']), int(task['attempt']))
    return train_candidate(task['cfg'], task['arch'], work_dir, threads=task.get('threads'))
