import os.path as osp

import pytest

from gpunet_mm.models.arch_spec import GPUNetArch
from gpunet_mm.nas.objectives import measured_latency, surrogate_accuracy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def nas_search_tool():
    """``tools/nas_search.py`` as a module (its ``main(argv)`` runs the command in-process,
    so a test can patch what it calls and read its exit code and messages)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'nas_search', osp.join(ROOT, 'tools', 'nas_search.py')
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def fidelity_cfg(sim_cfg, num_trials, **nas):
    """``sim_cfg`` with rungs 1/3/9 and a 60-epoch compute budget (the failure tests' search)."""
    sim_cfg['nas'].update(
        num_trials=num_trials,
        compute_budget=60,
        fidelity=dict(min_epochs=1, eta=3, max_epochs=9, min_observations=4),
        **nas,
    )
    return sim_cfg


def searched_for_final(work_dir: str) -> None:
    """A small simulated search with rungs and no final retrain in ``work_dir``, for the
    tests of ``tools/nas_search.py --final WORK_DIR`` (the retrain from the journal alone;
    simulated, since the CLI would also check for a real detector config)."""
    from gpunet_mm.search.api import run_search

    cfg = dict(
        search_space=dict(type='GPUNetSpace', variant='detection', resolutions=[320]),
        search_optimizer=dict(type='LaMCTSBO', seed=0, n_init=4, n_candidates=100),
        nas=dict(
            metric='metric',
            num_trials=8,
            calibration_samples=0,
            fidelity=dict(min_epochs=1, eta=3, max_epochs=9),
            simulate=dict(budgets=[1.2, 1.6], num_workers=3),
        ),
    )
    run_search(cfg, work_dir, simulate=True)


class FakeLatency:
    """Surrogate latency on a target that owns its device; counts what it measured."""

    exclusive = True

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor
        self.measured = []

    def measure(self, archs):
        out = []
        for d in archs:
            a = GPUNetArch.from_dict(d)
            self.measured.append(a.structural_hash())
            out.append(dict(latency_ms=self.factor * measured_latency(a)))
        return out


def surrogate_trainer(log=None, fail=None):
    """A worker function for LocalExecutor: surrogate accuracy, optional failures."""

    def fn(task):
        a = GPUNetArch.from_dict(task.arch)
        if log is not None:
            log.append((task.trial_id, task.attempt))
        if fail is not None:
            fail(task)
        return {'metric': surrogate_accuracy(a), 'params': 1}

    return fn


@pytest.fixture
def sim_cfg():
    """A search config for the simulated/in-process path (no detector needed)."""
    return dict(
        search_space=dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384]),
        search_optimizer=dict(type='LaMCTSBO', seed=0, n_init=4, n_candidates=200),
        nas=dict(
            metric='metric',
            num_trials=10,
            references=['GPUNet-0'],
            calibration_samples=1,
            ask_batch=4,
            simulate=dict(budgets=[1.0, 1.6], num_workers=4, mean_trial_s=60.0),
        ),
    )


def rung_trainer(log=None, fail=None):
    """A worker for LocalExecutor that honours the rung contract (payload ``epochs`` and
    ``resume_from``): it continues from the checkpoint's epoch, reports the epochs it
    reached and added, and a checkpoint path naming the epoch. ``log`` gets
    ``(trial_id, attempt, start_epoch, end_epoch)``."""
    from gpunet_mm.nas.objectives import surrogate_curve

    def fn(task):
        end = int(task.payload['epochs'])
        ckpt = task.payload.get('resume_from')
        start = int(ckpt.rsplit('epoch_', 1)[1].split('.')[0]) if ckpt else 0
        if log is not None:
            log.append((task.trial_id, task.attempt, start, end))
        if fail is not None:
            fail(task)
        return {
            'metric': surrogate_curve(task.arch, end, seed=task.trial_id),
            'epochs': end,
            'epochs_trained': end - start,
            'checkpoint': f'/ckpt/trial_{task.trial_id}/epoch_{end}.pth',
        }

    return fn


def run_simulated(cfg, work_dir, log=None, fail=None, workers=2, trainer=None, **kw):
    """A simulated search with fake latency on an in-process executor: ``trainer`` per
    attempt (default: the surrogate worker with ``log`` and ``fail``)."""
    from gpunet_mm.search import LocalExecutor
    from gpunet_mm.search.api import run_search

    fn = trainer if trainer is not None else surrogate_trainer(log, fail)
    ex = LocalExecutor(fn, num_workers=workers)
    return run_search(
        cfg,
        str(work_dir),
        simulate=True,
        executor=ex,
        latency=FakeLatency(),
        write_reports=kw.pop('write_reports', False),
        **kw,
    )
