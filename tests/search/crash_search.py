"""A search that trains slowly in-process, for the kill -9 test (run as a script)."""

import json
import os
import signal
import sys
import time
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gpunet_mm.atomic_write import atomic_write_text  # noqa: E402
from gpunet_mm.models.arch_spec import GPUNetArch  # noqa: E402
from gpunet_mm.nas.objectives import surrogate_accuracy  # noqa: E402
from gpunet_mm.search import LocalExecutor  # noqa: E402
from gpunet_mm.search.api import run_search  # noqa: E402
from tests.search.conftest import FakeLatency  # noqa: E402

#: where ``--kill-at`` kills the controller (SIGKILL to itself), at the first promoted
#: attempt (``resume_from`` set) sent after ``KILL_AFTER_FIRST_RUNGS`` first-rung attempts:
#: ``dispatch``: the attempt is in the journal (dispatched) and handed to the executor, and
#: its worker has not started it; ``train``: its worker has started it (logged ``start``);
#: ``returned``: its worker finished and saved its result, and the controller has not yet
#: written it to the journal.
KILL_POINTS = ('dispatch', 'train', 'returned')
KILL_AFTER_FIRST_RUNGS = 4


class KillAt:
    """Kills this process with SIGKILL at one point of one promoted attempt (a kill -9
    landing in a chosen window, every run, instead of wherever a watcher's poll lands)."""

    def __init__(self, point=None):
        if point not in (None, *KILL_POINTS):
            raise ValueError(f'--kill-at: got {point!r}, expected one of {KILL_POINTS}')
        self.point, self.first_rungs = point, 0

    def sent(self, task):
        if task.payload.get('resume_from') is None:
            self.first_rungs += 1
        self.check(task, 'dispatch')

    def check(self, task, point):
        if (
            point == self.point
            and task.payload.get('resume_from') is not None
            and self.first_rungs >= KILL_AFTER_FIRST_RUNGS
        ):
            os.kill(os.getpid(), signal.SIGKILL)


def saved_path(log_path, trial_id, attempt):
    """Where the rung worker saves an attempt's result (as the real worker saves it in the
    attempt's folder, :data:`gpunet_mm.search.worker.RESULT_FILE`)."""
    return f'{log_path}.results/{trial_id}_{attempt}.json'


class KillingExecutor(LocalExecutor):
    """The in-process executor, telling ``kill_at`` of each task it is handed (the
    controller has written the dispatch to the journal before it submits) and of each
    result it returns, and giving a resumed controller the results the worker saved."""

    def __init__(self, fn, kill_at, log_path, num_workers=1):
        super().__init__(fn, num_workers)
        self.kill_at, self.log_path = kill_at, log_path

    def submit(self, task):
        super().submit(task)
        self.kill_at.sent(task)

    def poll(self, timeout):
        task = self._queue[0] if self._queue else None
        out = super().poll(timeout)
        if task is not None:
            self.kill_at.check(task, 'returned')
        return out

    def recovered(self, task):
        path = saved_path(self.log_path, task.trial_id, task.attempt)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)


def rung_train(log_path, kill_at=None):
    """The rung contract (payload epochs / resume_from), slowly, logging start and end;
    the result is saved (:func:`saved_path`) before ``end`` is logged, as the real worker
    saves it before it returns: ``end`` is logged once the training can no longer be lost."""
    from gpunet_mm.nas.objectives import surrogate_curve

    def train(task):
        end = int(task.payload['epochs'])
        ckpt = task.payload.get('resume_from')
        start = int(ckpt.rsplit('epoch_', 1)[1]) if ckpt else 0
        key = [task.trial_id, task.attempt, start, end]
        with open(log_path, 'a') as f:
            f.write(json.dumps(['start', *key]) + '\n')
        if kill_at is not None:
            kill_at.check(task, 'train')
        time.sleep(0.15 * (end - start))
        result = dict(
            metric=surrogate_curve(task.arch, end, seed=task.trial_id),
            epochs=end,
            epochs_trained=end - start,
            checkpoint=f'/ckpt/trial_{task.trial_id}/epoch_{end}',
        )
        atomic_write_text(saved_path(log_path, task.trial_id, task.attempt), json.dumps(result))
        with open(log_path, 'a') as f:
            f.write(json.dumps(['end', *key]) + '\n')
        return result

    return train


def main(
    work_dir: str,
    log_path: str,
    resume: bool,
    fidelity: bool = False,
    final: bool = False,
    kill_at: Optional[str] = None,
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
    killer = KillAt(kill_at)
    if fidelity:
        cfg['nas']['fidelity'] = dict(
            min_epochs=1, eta=3, max_epochs=9, min_observations=3, brackets=brackets
        )
        train = rung_train(log_path, killer)  # noqa: F811 (the rung contract instead)
    run_search(
        cfg,
        work_dir,
        simulate=True,
        resume=resume,
        executor=KillingExecutor(train, killer, log_path, num_workers=1),
        latency=FakeLatency(),
        write_reports=False,
    )


if __name__ == '__main__':
    kill = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--kill-at=')]
    main(
        sys.argv[1],
        sys.argv[2],
        '--resume' in sys.argv,
        '--fidelity' in sys.argv,
        '--final' in sys.argv,
        kill[0] if kill else None,
        'hyperband' if '--brackets' in sys.argv else 'asha',
    )
