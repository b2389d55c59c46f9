"""One rank of a multi-process trial: ``python -m torch.distributed.run ... -m
gpunet_mm.search.dist_trial TASK_JSON`` (started by
:func:`~gpunet_mm.search.worker.run_distributed`).
Rank 0 writes the result next to the task."""

from __future__ import annotations

import json
import os
import os.path as osp
import sys


def main(spec: str) -> None:
    from ..apis.runner import close_process_group
    from ..atomic_write import atomic_write_text
    from .trainer import train_candidate
    from .worker import RESULT_FILE, fidelity_kwargs

    with open(spec) as f:
        task = json.load(f)
    completed = False
    try:
        result = train_candidate(
            task['cfg'],
            task['arch'],
            task['work_dir'],
            threads=task.get('threads'),
            launcher='pytorch',
            **fidelity_kwargs(task),
        )
        if int(os.environ.get('RANK', '0')) == 0:
            result['world_size'] = int(os.environ.get('WORLD_SIZE', '1'))
            atomic_write_text(
                osp.join(task['work_dir'], RESULT_FILE), json.dumps(result, default=str)
            )
        completed = True
    finally:
        close_process_group(completed)  # rank 0 may still be writing when rank 1 is done


if __name__ == '__main__':
    main(sys.argv[1])
