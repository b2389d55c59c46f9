"""The function a search worker runs for one attempt (a Ray task, or in-process).

A trial trains in the worker process itself, or, with ``nproc > 1`` (``nas.nproc_per_trial``,
for schedules that need several GPUs), in ``torchrun``-launched processes that the worker
starts and waits for (:mod:`gpunet_mm.search.dist_trial`); give such a trial the matching
``nas.resources`` (e.g. ``num_gpus=8``).
"""

from __future__ import annotations

import json
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import Any, Dict, Optional

from .faults import disk_full


def trial_dir(root: str, trial_id: int, attempt: int) -> str:
    return osp.join(root, 'trials', f'{trial_id:04d}', f'attempt_{attempt}')


#: the result an attempt leaves in its folder when it finishes, written before it is
#: returned: a controller killed after the training ended and before it journaled the
#: result finds it there on ``--resume`` (:func:`saved_result`) instead of training again
RESULT_FILE = 'trial_result.json'


def saved_result(root: str, trial_id: int, attempt: int) -> Optional[Dict[str, Any]]:
    """The result attempt ``attempt`` of trial ``trial_id`` left under the search folder
    ``root``, or None (it did not finish, or it ran before results were saved)."""
    path = osp.join(trial_dir(root, trial_id, attempt), RESULT_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


#: payload keys of a multi-fidelity attempt, passed to :func:`~.trainer.train_candidate`
#: as they are (absent: the attempt trains the whole proxy schedule from scratch, as before)
FIDELITY_KEYS = ('epochs', 'resume_from', 'final', 'final_schedule', 'inherit_from')


def fidelity_kwargs(task: Dict[str, Any]) -> Dict[str, Any]:
    """The multi-fidelity keys a task carries (and not None)."""
    return {k: task[k] for k in FIDELITY_KEYS if task.get(k) is not None}


def run_trial(task: Dict[str, Any]) -> Dict[str, Any]:
    """Train and evaluate ``task['arch']`` with the search config ``task['cfg']``.

    ``task`` is what :class:`~gpunet_mm.search.executor.TrialTask` carries, flattened:
    ``trial_id``, ``attempt``, ``arch`` and the controller's payload (``cfg``, ``work_dir``,
    ``threads``, ``nproc``; for multi-fidelity :data:`FIDELITY_KEYS`).
    """
    from ..apis.runner import check_dataset_files

    # here, where the paths resolve (this worker's working directory and disks): missing
    # data raises DatasetFilesError, on which the controller stops the search at once
    # instead of failing (and charging) every candidate after it
    check_dataset_files(task['cfg'], ('train', 'val'))
    work_dir = trial_dir(task['work_dir'], int(task['trial_id']), int(task['attempt']))
    if task.get('final'):  # the final retrain: its own folder, never the search's attempts
        work_dir = osp.join(osp.dirname(work_dir), f'final_{int(task["attempt"])}')
    try:
        return _train(task, work_dir)
    except Exception as e:
        # a full disk names the file (mmengine writes a checkpoint's bytes to an open file,
        # so its error names none: then the attempt's folder) and keeps its errno on the
        # way to the controller, which stops the search on it (faults.disk_full)
        full = disk_full(e)
        if full is None:
            raise
        raise full.as_oserror(work_dir) from e


def _train(task: Dict[str, Any], work_dir: str) -> Dict[str, Any]:
    nproc = int(task.get('nproc') or 1)
    if nproc > 1:
        return run_distributed(task, work_dir, nproc)
    from ..atomic_write import atomic_write_text
    from .trainer import train_candidate

    result = train_candidate(
        task['cfg'], task['arch'], work_dir, threads=task.get('threads'), **fidelity_kwargs(task)
    )
    atomic_write_text(osp.join(work_dir, RESULT_FILE), json.dumps(result, default=str))
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def run_distributed(task: Dict[str, Any], work_dir: str, nproc: int) -> Dict[str, Any]:
    """One trial on ``nproc`` processes (torchrun, rendezvous on this node's loopback)."""
    os.makedirs(work_dir, exist_ok=True)
    spec = osp.join(work_dir, 'trial_task.json')
    with open(spec, 'w') as f:
        json.dump(dict(task, work_dir=work_dir), f)
    cmd = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        f'--nproc_per_node={nproc}',
        '--master_addr=127.0.0.1',
        f'--master_port={_free_port()}',
        '-m',
        'gpunet_mm.search.dist_trial',
        spec,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    result_file = osp.join(work_dir, RESULT_FILE)
    if proc.returncode != 0 or not osp.isfile(result_file):
        tail = (proc.stderr or '')[-3000:]
        if 'FloatingPointError' in tail:
            raise FloatingPointError(f'a rank diverged (NaN/inf loss): {tail[-800:]}')
        raise RuntimeError(f'torchrun trial failed (exit {proc.returncode}): {tail}')
    with open(result_file) as f:
        return json.load(f)
