"""A search that trains slowly in-process, for the kill -9 test (run as a script)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gpunet_mm.models.arch_spec import GPUNetArch  # noqa: E402
from gpunet_mm.nas.objectives import surrogate_accuracy  # noqa: E402
from gpunet_mm.search import LocalExecutor  # noqa: E402
from gpunet_mm.search.api import run_search  # noqa: E402
from tests.search.conftest import FakeLatency  # noqa: E402


def rung_train(log_path):
    """The rung contract (payload epochs / resume_from), slowly, logging start and end."""
    from gpunet_mm.nas.objectives import surrogate_curve

    def train(task):
        end = int(task.payload['epochs'])
        ckpt = task.payload.get('resume_from')
        start = int(ckpt.rsplit('epoch_', 1)[1]) if ckpt else 0
        key = [task.trial_id, task.attempt, start, end]
        with open(log_path, 'a') as f:
            f.write(json.dumps(['start', *key]) + '\n')
        time.sleep(0.15 * (end - start))
        value = surrogate_curve(task.arch, end, seed=task.trial_id)
        with open(log_path, 'a') as f:
            f.write(json.dumps(['end', *key]) + '\n')
        return dict(
            metric=value,
            epochs=end,
            epochs_trained=end - start,
            checkpoint=f'/ckpt/trial_{task.trial_id}/epoch_{end}',
        )

    return train


def main(
    work_dir: str,
    log_path: str,
    resume: bool,
    fidelity: bool = False,
    final: bool = False,
    brackets: str = 'asha',
) -> None:
    def train(task):
        if task.payload.get('final'):  # the final retrain: slower, logged as such
            with open(log_path, 'a') as f:
                f.write(json.dumps(['final_start', task.trial_id, task.attempt]) + '\n')
            time.sleep(1.0)
            value = 100.0 + surrogate_accuracy(GPUNetArch.from_dict(task.arch))
            with open(log_path, 'a') as f:
                f.write(json.dumps(['final_end', task.trial_id, task.attempt]) + '\n')
            return {'metric': value, 'epochs': 12}
        with open(log_path, 'a') as f:
            f.write(json.dumps(['start', task.trial_id, task.attempt]) + '\n')
        time.sleep(0.4)
        value = surrogate_accuracy(GPUNetArch.from_dict(task.arch))
        with open(log_path, 'a') as f:
            f.write(json.dumps(['end', task.trial_id, task.attempt]) + '\n')
        return {'metric': value}

    cfg = dict(
        search_space=dict(type='GPUNetSpace', variant='detection', resolutions=[320]),
        search_optimizer=dict(type='LaMCTSBO', seed=0, n_init=4, n_candidates=100),
        nas=dict(
            metric='metric',
            num_trials=12,
            references=['GPUNet-0'],
            ask_batch=2,
            calibration_samples=0,
            simulate=dict(budgets=[1.5]),
        ),
    )
    if final:  # two finals on one worker: one finishes while the other trains
        cfg['nas'].update(num_trials=6, final=dict(top_k=2))
    if fidelity:
        cfg['nas']['fidelity'] = dict(
            min_epochs=1, eta=3, max_epochs=9, min_observations=3, brackets=brackets
        )
        train = rung_train(log_path)  # noqa: F811 (the rung contract instead)
    run_search(
        cfg,
        work_dir,
        simulate=True,
        resume=resume,
        executor=LocalExecutor(train, num_workers=1),
        latency=FakeLatency(),
        write_reports=False,
    )


if __name__ == '__main__':
    main(
        sys.argv[1],
        sys.argv[2],
        '--resume' in sys.argv,
        '--fidelity' in sys.argv,
        '--final' in sys.argv,
        'hyperband' if '--brackets' in sys.argv else 'asha',
    )
