"""A failure that every attempt would repeat stops the search; a candidate's own does not.

The controller with fakes of its rooms: an in-process executor whose worker function
plays the cluster (a dead raylet raises Ray's own ``LocalRayletDiedError``), the fake
latency service, and the multi-fidelity rung worker of the other tests.
"""

from __future__ import annotations

import pytest

from gpunet_mm.search import LocalExecutor, SearchJournal
from gpunet_mm.search.api import run_search
from gpunet_mm.search.controller import SearchHalted
from gpunet_mm.search.executor import systemic_cause
from gpunet_mm.search.faults import error_signature, open_run

from .conftest import FakeLatency, run_simulated, rung_trainer


def _cfg(sim_cfg, **nas):
    from .conftest import fidelity_cfg

    return fidelity_cfg(sim_cfg, 12, **nas)


def _run(cfg, work_dir, fn, workers=1, **kw):
    return run_simulated(cfg, work_dir, workers=workers, trainer=fn, **kw)


def _trained_epochs(j):
    """Epochs the worker really trained, from the attempts that finished."""
    rows = j.con.execute(
        'SELECT r.epochs_trained FROM attempts a JOIN rung_attempts r ON '
        "a.trial_id=r.trial_id AND a.attempt=r.attempt WHERE a.outcome='ok'"
    )
    return sum(r[0] for r in rows)


class Cluster:
    """A worker function whose cluster dies after ``alive`` trainings: every later attempt
    raises what Ray raises when the local raylet is gone."""

    def __init__(self, alive, log=None):
        self.alive = alive
        self.train = rung_trainer(log)
        self.calls = 0

    def __call__(self, task):
        self.calls += 1
        if self.calls > self.alive:
            import ray.exceptions

            raise ray.exceptions.LocalRayletDiedError()
        return self.train(task)


def test_dead_cluster_stops_at_once_charges_nothing_and_resume_trains_them(sim_cfg, tmp_path):
    cfg = _cfg(sim_cfg)
    cluster = Cluster(alive=3)
    with pytest.raises(SearchHalted) as info:
        _run(cfg, tmp_path, cluster)
    msg = str(info.value)
    assert 'raylet died' in msg and '--resume' in msg and 'not charged' in msg
    assert cluster.calls == 4  # the first failure stopped it: nothing else was sent
    j = SearchJournal.open(str(tmp_path))
    outcomes = [a['outcome'] for t in j.trials() for a in j.attempts(t.id)]
    assert outcomes.count('ok') == 3 and outcomes.count('halted') == 1
    assert not j.trials(('failed',))
    halted = [t for t in j.trials() if any(a['outcome'] == 'halted' for a in j.attempts(t.id))]
    assert [t.status for t in halted] == ['queued'] and j.failures(halted[0].id) == 0
    spent, inflight = j.compute_epochs()
    assert spent == _trained_epochs(j) > 0 and inflight == 0  # what the 3 trainings added
    assert [e['data']['reason'] for e in j.events('halt')] == [
        systemic_cause(__import__('ray').exceptions.LocalRayletDiedError())
    ]
    j.close()

    # the cause fixed: --resume trains the stopped candidate and goes on
    log = []
    s = _run(cfg, tmp_path, rung_trainer(log), resume=True)
    assert (halted[0].id, 2, 0, 1) in log  # its first rung, from scratch, attempt 2
    j = SearchJournal.open(str(tmp_path))
    assert j.trial(halted[0].id).status == 'complete'
    assert s['compute_epochs'] == _trained_epochs(j)  # nothing charged for the halt
    assert s['trials_by_status'].get('failed', 0) == 0


def test_the_same_error_from_k_distinct_candidates_stops_the_search(sim_cfg, tmp_path):
    """A broken setup the executor cannot name (here: a path every worker misses). With
    two attempts per trial the first candidates exhaust theirs before the third distinct
    one fails: they are held, not failed, until the run decides."""
    cfg = _cfg(sim_cfg, max_attempts=2, max_consecutive_failures=3)
    train = rung_trainer()

    def broken(task):
        if task.trial_id == 1 and task.payload['epochs'] == 1:  # before the setup broke
            return train(task)
        raise RuntimeError(f'cannot open /scratch/job_{task.trial_id * 977}/shard.bin')

    with pytest.raises(SearchHalted, match='3 distinct candidates in a row'):
        _run(cfg, tmp_path, broken, workers=2)
    j = SearchJournal.open(str(tmp_path))
    assert not j.trials(('failed',))
    failed_attempts = [
        a for t in j.trials() for a in j.attempts(t.id) if a['outcome'] not in ('ok', None)
    ]
    # the run's three, and the one still training when it stopped (drained: same error)
    assert len({a['trial_id'] for a in failed_attempts}) == 4
    assert {a['outcome'] for a in failed_attempts} == {'halted'}
    assert all(j.failures(a['trial_id']) == 0 for a in failed_attempts)
    assert j.compute_epochs() == (_trained_epochs(j), 0.0) == (1, 0.0)
    j.close()

    s = _run(cfg, tmp_path, rung_trainer(), resume=True, workers=2)
    j = SearchJournal.open(str(tmp_path))
    for tid in {a['trial_id'] for a in failed_attempts}:
        assert j.trial(tid).status == 'complete'
    assert s['trials_by_status'].get('failed', 0) == 0


@pytest.mark.parametrize('kind', ['error', 'nan'])
def test_candidate_failures_keep_retry_then_failed(sim_cfg, tmp_path, kind):
    """Identical errors with successes between them, or NaN losses (a candidate's own
    failure) from any number of candidates: retried, then failed; the search goes on."""
    cfg = _cfg(sim_cfg, max_attempts=2, max_consecutive_failures=2)
    train = rung_trainer()

    def flaky(task):
        if task.trial_id % 2 == 0 and task.payload['epochs'] == 1:
            if kind == 'nan':
                raise FloatingPointError('loss is nan at iteration 3')
            raise RuntimeError('this architecture hits a shape bug')
        return train(task)

    s = _run(cfg, tmp_path, flaky, workers=1 if kind == 'error' else 2)
    j = SearchJournal.open(str(tmp_path))
    failed = j.trials(('failed',))
    assert len(failed) >= 3 and all(t.id % 2 == 0 for t in failed)
    assert all(j.failures(t.id) == 2 for t in failed)
    assert not j.events('halt')
    # a failed attempt's planned epochs are charged, as before
    assert s['compute_epochs'] == _trained_epochs(j) + 2 * len(failed)


def test_held_trials_fail_when_nothing_can_end_the_run(sim_cfg, tmp_path):
    """The last candidates fail alike, fewer than K: nothing else runs, so they fail for
    good as before and the search ends normally."""
    sim_cfg['nas'].update(num_trials=3, max_attempts=1, max_consecutive_failures=5)
    train = rung_trainer()
    sim_cfg['nas']['fidelity'] = dict(min_epochs=1, eta=3, max_epochs=9, min_observations=4)

    def late(task):
        if task.trial_id >= 2:
            raise RuntimeError('same error')
        return train(task)

    s = _run(sim_cfg, tmp_path, late, workers=1)
    assert s['trials_by_status']['failed'] == 2
    assert not SearchJournal.open(str(tmp_path)).events('halt')


def test_error_signature_ignores_numbers_and_ids():
    a = 'RuntimeError: cannot open /scratch/job_977/trials/0003/attempt_1 (pid 4411, 0x7f3a)'
    b = 'RuntimeError: cannot open /scratch/job_1954/trials/0012/attempt_2 (pid 93, 0x11)'
    assert error_signature(a) == error_signature(b)
    assert error_signature(a) != error_signature('RuntimeError: out of disk')
    ends = [
        dict(trial_id=5, attempt=1, outcome='error', error=a),
        dict(trial_id=4, attempt=2, outcome='error', error=b),
        dict(trial_id=3, attempt=1, outcome='nan', error=a),
        dict(trial_id=2, attempt=1, outcome='error', error=a),
    ]
    run = open_run(ends)
    assert run.attempts == [(5, 1), (4, 2)] and run.trials == {4, 5}
    assert open_run(ends[2:]) is None  # the newest is a NaN: a candidate's own


def test_systemic_causes_are_named():
    import ray.exceptions

    from gpunet_mm.apis import BrokenDatasetError, MissingDatasetError

    assert 'data' in systemic_cause(MissingDatasetError('train_dataloader: x does not exist'))
    assert 'data' in systemic_cause(BrokenDatasetError('x is empty'))
    assert 'Ray' in systemic_cause(ray.exceptions.LocalRayletDiedError())
    assert 'Ray' in systemic_cause(ray.exceptions.RaySystemError('gcs gone'))
    assert systemic_cause(RuntimeError('shape mismatch')) is None
    assert systemic_cause(ray.exceptions.WorkerCrashedError()) is None  # the OOM killer
    assert systemic_cause(FileNotFoundError('resume checkpoint')) is None


def test_the_command_line_names_the_cause_and_the_resume_command(monkeypatch, capsys, tmp_path):
    import os.path as osp

    from .conftest import ROOT, nas_search_tool

    tool = nas_search_tool()

    def halted(*a, **k):
        raise SearchHalted('the search stopped: the Ray cluster is gone. Fix it, then --resume')

    monkeypatch.setattr('gpunet_mm.search.api.run_search', halted)
    config = osp.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py')
    rc = tool.main([config, '--work-dir', str(tmp_path / 'wd'), '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 2 and 'Traceback' not in err
    assert err.count('nas_search: error:') == 1 and 'the Ray cluster is gone' in err
    assert f'python tools/nas_search.py {config} --work-dir {tmp_path / "wd"} --resume' in err


def test_a_dead_latency_actor_stops_the_search_and_leaves_the_proposals(sim_cfg, tmp_path):
    """The timing service (a Ray actor on a device of its own) died: the proposals it did
    not measure are not failed; ``--resume`` measures them."""
    import ray.exceptions

    class DyingLatency(FakeLatency):
        def measure(self, archs):
            if len(self.measured) >= 4:
                raise ray.exceptions.ActorDiedError()
            return super().measure(archs)

    cfg = _cfg(sim_cfg)
    with pytest.raises(SearchHalted, match='latency measurement failed: the Ray cluster'):
        run_search(
            cfg,
            str(tmp_path),
            simulate=True,
            executor=LocalExecutor(rung_trainer(), num_workers=1),
            latency=DyingLatency(),
            write_reports=False,
        )
    j = SearchJournal.open(str(tmp_path))
    assert j.trials(('proposed',)) and not j.trials(('failed',))
    j.close()
    s = _run(cfg, tmp_path, rung_trainer(), resume=True)
    assert s['trials_by_status'].get('failed', 0) == 0
    assert s['trials_by_status'].get('proposed', 0) == 0
