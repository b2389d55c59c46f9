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
from typing import Any, Dict


def trial_dir(root: str, trial_id: int, attempt: int) -> str:
    return osp.join(root, 'trials', f'{trial_id:04d}', f'attempt_{attempt}')


def run_trial(task: Dict[str, Any]) -> Dict[str, Any]:
    """Train and evaluate ``task['arch']`` with the search config ``task['cfg']``.

    ``task`` is what :class:`~gpunet_mm.search.executor.TrialTask` carries, flattened:
    ``trial_id``, ``attempt``, ``arch`` and the controller's payload (``cfg``, ``work_dir``,
    ``threads``, ``nproc``).
    """
    work_dir = trial_dir(task['work_dir'], int(task['trial_id']), int(task['attempt']))
    if task.get('final'):  # the final retrain: its own folder, never the search's attempts
        work_dir = osp.join(osp.dirname(work_dir), f'final_{int(task["attempt"])}')
    nproc = int(task.get('nproc') or 1)
    if nproc > 1:
        return run_distributed(task, work_dir, nproc)
    from .trainer import train_candidate

    return train_candidate(task['cfg'], task['arch'], work_dir, threads=task.get('threads'))


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
    result_file = osp.join(work_dir, 'trial_result.json')
    if proc.returncode != 0 or not osp.isfile(result_file):
        tail = (proc.stderr or '')[-3000:]
        if 'FloatingPointError' in tail:
            raise FloatingPointError(f'a rank diverged (NaN/inf loss): {tail[-800:]}')
        raise RuntimeError(f'torchrun trial failed (exit {proc.returncode}): {tail}')
    with open(result_file) as f:
        return json.load(f)
