"""kill -9 of the controller mid-search, then --resume: nothing finished is lost or
re-trained, the trial that was running is dispatched again."""

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from gpunet_mm.search import SearchJournal

from .conftest import ROOT

SCRIPT = os.path.join(ROOT, 'tests', 'search', 'crash_search.py')


def _existing_journal(work_dir):
    """A connection to the journal of the search being watched, never creating it: a
    ``sqlite3.connect`` of a missing file creates an empty one, and one made between the
    search's ``makedirs`` and its ``SearchJournal.create`` made the search refuse a work_dir
    that "already holds a search journal" (raises ``sqlite3.Error`` while there is none)."""
    path = pathlib.Path(work_dir, 'journal.sqlite').absolute()
    return sqlite3.connect(f'{path.as_uri()}?mode=rw', uri=True, timeout=1)


def _complete(work_dir):
    try:
        con = _existing_journal(work_dir)
        n = con.execute("SELECT COUNT(*) FROM trials WHERE status='complete'").fetchone()[0]
        running = con.execute("SELECT COUNT(*) FROM trials WHERE status='running'").fetchone()[0]
        con.close()
        return n, running
    except sqlite3.Error:
        return 0, 0


def _at_least(state, n):
    """``(count, running)`` of a watcher: at least ``n`` done and one running now."""
    done, running = state
    return done >= n and bool(running)


def _run_and_kill_when(argv, ready, timeout_s=120):
    """Start ``argv`` and SIGKILL it as soon as ``ready()`` holds (polled every 20 ms), or
    after ``timeout_s``; the test's checks then say whether the kill landed where meant."""
    p = subprocess.Popen(argv, cwd=ROOT)
    t0 = time.time()
    while time.time() - t0 < timeout_s and not ready():
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_kill9_then_resume(tmp_path):
    wd, log = str(tmp_path / 'search'), str(tmp_path / 'trained.log')
    _run_and_kill_when([sys.executable, SCRIPT, wd, log], lambda: _at_least(_complete(wd), 4))
    before = {t.id: (t.arch_hash, t.metric) for t in SearchJournal.open(wd).trials(('complete',))}
    was_running = [t.id for t in SearchJournal.open(wd).trials(('running',))]
    assert len(before) >= 4 and was_running

    subprocess.run([sys.executable, SCRIPT, wd, log, '--resume'], cwd=ROOT, check=True, timeout=300)
    j = SearchJournal.open(wd)
    after = {t.id: (t.arch_hash, t.metric) for t in j.trials(('complete',))}
    for tid, v in before.items():  # nothing finished was lost or changed
        assert after[tid] == v
    events = [json.loads(line) for line in open(log)]
    ended = [tid for kind, tid, _ in events if kind == 'end']
    assert len(ended) == len(set(ended))  # no trial trained to the end twice
    for tid in was_running:  # re-dispatched: a crashed attempt, then one that finished
        outcomes = [a['outcome'] for a in j.attempts(tid)]
        assert outcomes[-2:] == ['lost', 'ok'], outcomes
    assert len([t for t in j.trials() if t.attempts > 0]) == 12
    assert any(e['kind'] == 'resume' for e in j.events())


def _training(work_dir, log, where):
    """Finished rung results, and whether an open attempt matching ``where`` (SQL on the
    rung attempt ``r``) is training: dispatched in the journal *and* started by its worker
    (its 'start' line is in the log), so a kill lands inside the training, not between
    the dispatch and the worker's first line (a window a loaded machine widens)."""
    try:
        con = _existing_journal(work_dir)
        n = con.execute('SELECT COUNT(*) FROM rung_results').fetchone()[0]
        open_ = con.execute(
            'SELECT a.trial_id, a.attempt FROM attempts a JOIN rung_attempts r ON '
            'a.trial_id=r.trial_id AND a.attempt=r.attempt WHERE a.outcome IS NULL AND ' + where
        ).fetchall()
        con.close()
    except sqlite3.Error:
        return 0, False
    started = set()
    if open_ and os.path.exists(log):
        with open(log) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:  # a line being written
                    continue
                if e[0] == 'start':
                    started.add((e[1], e[2]))
    return n, any((t, a) in started for t, a in open_)


def _promoted_running(work_dir, log):
    """Finished rung results, and whether an attempt of a promoted rung is training."""
    return _training(work_dir, log, 'r.rung >= 1')


#: the epoch each rung of crash_search.py's ``--fidelity`` search ends at
RUNG_EPOCHS = (1, 3, 9)


def _killed_state(work_dir):
    """What the journal holds after the kill: the rung results, and ``{trial: (rung,
    attempt)}`` of each attempt that was running."""
    j = SearchJournal.open(work_dir)
    results = {(r['trial_id'], r['rung']): (r['metric'], r['checkpoint']) for r in j.rung_results()}
    killed = {t.id: (j.target_rung(t.id), t.attempts) for t in j.trials(('running',))}
    j.close()
    assert len(results) >= 4 and killed and max(r for r, _a in killed.values()) >= 1
    return results, killed


def _check_promotion_resumed(work_dir, log, before, killed):
    """After ``--resume``: no rung result lost or changed, no rung trained to its end twice,
    each killed attempt either recorded from the result its worker saved (it had finished)
    or ``lost`` and dispatched again from the same epoch (the end of the rung below, whose
    checkpoint it continues from), and the compute the journal charged is what the workers
    trained plus the epochs of lost attempts no worker started.

    The controller writes a dispatch to the journal before it hands the attempt to a worker,
    so a kill can land after the write and before the worker starts (or logs anything): a
    killed attempt's start is read from its ``dispatch`` record, and from the worker's log
    only where the worker got that far. Such an attempt is charged the epochs it was sent
    to train, as one killed mid-training is: the controller cannot tell the two apart (a
    Ray worker may be half-way through a task its driver sent just before dying), and
    charging it keeps ``nas.compute_budget`` an upper bound.

    Returns the attempts no worker started and those recovered from a saved result."""
    j = SearchJournal.open(work_dir)
    after = {(r['trial_id'], r['rung']): (r['metric'], r['checkpoint']) for r in j.rung_results()}
    for k, v in before.items():  # no rung result lost or changed
        assert after[k] == v
    events = [json.loads(line) for line in open(log)]
    ended = [(tid, end) for kind, tid, _a, _s, end in events if kind == 'end']
    assert len(ended) == len(set(ended))  # no rung trained to its end twice
    started = {(tid, a): s for kind, tid, a, s, _end in events if kind == 'start'}
    sent = {(e['trial_id'], e['data']['attempt']): e['data'] for e in j.events('dispatch')}
    recovered = []
    for tid, (rung, attempt) in killed.items():
        outcomes = [a['outcome'] for a in j.attempts(tid)]
        resumed = RUNG_EPOCHS[rung - 1]
        assert sent[tid, attempt]['start_epochs'] == resumed
        assert started.get((tid, attempt), resumed) == resumed
        if outcomes[attempt - 1] == 'ok':  # it had finished: its saved result, not a retrain
            assert (tid, RUNG_EPOCHS[rung]) in ended and (tid, rung) in after
            recovered.append((tid, attempt))
            continue
        assert outcomes[attempt - 1 : attempt + 1] == ['lost', 'ok'], outcomes  # then it may climb
        # sent again from where the rung below ended (its checkpoint), not from 0
        assert sent[tid, attempt + 1]['start_epochs'] == started[tid, attempt + 1] == resumed
    unstarted = [k for k in sent if k not in started]
    for tid, a in unstarted:  # only a killed attempt may never have reached its worker
        assert j.attempts(tid)[a - 1]['outcome'] == 'lost'
    assert len([t for t in j.trials() if t.attempts > 0]) == 12
    assert j.compute_epochs()[0] == sum(
        end - s for kind, _t, _a, s, end in events if kind == 'start'
    ) + sum(sent[k]['target_epochs'] - sent[k]['start_epochs'] for k in unstarted)
    j.close()
    return unstarted, recovered


@pytest.mark.slow  # the windows it lands in are each tested every run below
def test_kill9_during_a_promotion_then_resume(tmp_path):
    """Killed while a promoted candidate trains its next rung (wherever the watcher's kill
    lands: before or after the worker starts it, or after it finished): --resume loses no
    rung result, re-trains no rung that finished, and continues the killed one from the
    same checkpoint (its previous rung's), not from scratch."""
    wd, log = str(tmp_path / 'search'), str(tmp_path / 'trained.log')
    _run_and_kill_when(
        [sys.executable, SCRIPT, wd, log, '--fidelity'],
        lambda: _at_least(_promoted_running(wd, log), 4),
    )
    before, killed = _killed_state(wd)

    subprocess.run(
        [sys.executable, SCRIPT, wd, log, '--resume', '--fidelity'],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    _check_promotion_resumed(wd, log, before, killed)


@pytest.mark.parametrize('point', ['dispatch', 'train', 'returned'])
def test_kill9_at_a_point_of_a_promotion_then_resume(tmp_path, point):
    """The kill -9 of the test above, landed in each window every run: ``dispatch``: the
    promoted attempt is in the journal and handed to the executor, and no worker started it
    (the window the watcher hit about 1 run in 5); ``train``: its worker is training it;
    ``returned``: its worker finished and saved its result, the journal does not have it yet
    (--resume records the saved result: the rung is not trained again)."""
    wd, log = str(tmp_path / 'search'), str(tmp_path / 'trained.log')
    cmd = [sys.executable, SCRIPT, wd, log, '--fidelity']
    p = subprocess.run([*cmd, f'--kill-at={point}'], cwd=ROOT, timeout=300)
    assert p.returncode == -signal.SIGKILL
    before, killed = _killed_state(wd)
    assert len(killed) == 1

    subprocess.run([*cmd, '--resume'], cwd=ROOT, check=True, timeout=300)
    unstarted, recovered = _check_promotion_resumed(wd, log, before, killed)
    ((tid, (_rung, attempt)),) = killed.items()
    assert unstarted == ([(tid, attempt)] if point == 'dispatch' else [])
    assert recovered == ([(tid, attempt)] if point == 'returned' else [])


def test_a_worker_saves_its_result_for_a_resumed_controller(tmp_path, monkeypatch):
    """The real worker leaves its result in the attempt's folder before it returns it, and
    an executor hands that result (and only that attempt's) to a resumed controller."""
    from gpunet_mm.search import LocalExecutor, worker
    from gpunet_mm.search import trainer as trainer_mod
    from gpunet_mm.search.executor import TrialTask

    result = dict(metric=0.25, epochs=3, epochs_trained=2, checkpoint='/c/epoch_3.pth')
    seen = []
    monkeypatch.setattr(
        trainer_mod, 'train_candidate', lambda cfg, arch, wd, **kw: seen.append(wd) or result
    )
    root = str(tmp_path / 'search')
    task = dict(trial_id=7, attempt=2, arch={}, cfg={}, work_dir=root, epochs=3)
    assert worker.run_trial(task) == result
    assert seen == [worker.trial_dir(root, 7, 2)]
    ex = LocalExecutor(lambda t: {}, 1)
    assert ex.recovered(TrialTask(7, 2, {}, dict(work_dir=root))) == result
    assert ex.recovered(TrialTask(7, 3, {}, dict(work_dir=root))) is None  # not finished
    assert ex.recovered(TrialTask(7, 2, {}, {})) is None  # no folder: nothing saved


def _start_running(work_dir, log):
    """Rung results, and whether a candidate that started above the first rung (a
    bracket) is training its first attempt from scratch."""
    return _training(work_dir, log, 'r.rung >= 1 AND r.start_epochs = 0')


def test_kill9_while_a_candidate_starts_at_a_later_rung_then_resume(tmp_path):
    """Brackets (``nas.fidelity.brackets``): killed while a candidate trains from scratch
    to the later rung it starts at, ``--resume`` keeps every start decided (none is
    decided again), trains the killed one from scratch to the same rung, and neither
    loses nor re-trains a finished rung."""
    wd, log = str(tmp_path / 'search'), str(tmp_path / 'trained.log')
    _run_and_kill_when(
        [sys.executable, SCRIPT, wd, log, '--fidelity', '--brackets'],
        lambda: _at_least(_start_running(wd, log), 3),
    )
    j = SearchJournal.open(wd)
    before = {(r['trial_id'], r['rung']): (r['metric'], r['checkpoint']) for r in j.rung_results()}
    starts_before = j.start_rungs()
    killed = [t.id for t in j.trials(('running',))]
    j.close()
    assert len(before) >= 3 and killed and set(killed) <= set(starts_before)

    subprocess.run(
        [sys.executable, SCRIPT, wd, log, '--resume', '--fidelity', '--brackets'],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    j = SearchJournal.open(wd)
    after = {(r['trial_id'], r['rung']): (r['metric'], r['checkpoint']) for r in j.rung_results()}
    for k, v in before.items():  # no rung result lost or changed
        assert after[k] == v
    starts = j.start_rungs()
    for tid, k in starts_before.items():  # the starts decided before the kill stand
        assert starts[tid] == k
    events = [json.loads(line) for line in open(log)]
    ended = [(tid, end) for kind, tid, _a, _s, end in events if kind == 'end']
    assert len(ended) == len(set(ended))  # no rung trained to its end twice
    for tid in killed:
        outcomes = [a['outcome'] for a in j.attempts(tid)]
        if 'lost' not in outcomes:  # it finished before the kill: its saved result recorded
            assert outcomes[0] == 'ok' and (tid, (1, 3, 9)[starts[tid]]) in ended, outcomes
            continue
        lost = outcomes.index('lost')
        assert outcomes[lost + 1] == 'ok', outcomes
        runs = {a: (s, end) for kind, t, a, s, end in events if kind == 'start' and t == tid}
        # the re-dispatched attempt trains from scratch to the same rung as the killed one
        assert runs[lost + 2] == runs[lost + 1] == (0, (1, 3, 9)[starts[tid]])
    assert len([t for t in j.trials() if t.attempts > 0]) == 12
    assert j.compute_epochs()[0] == sum(
        end - s for kind, _t, _a, s, end in events if kind == 'start'
    )


def _finals(work_dir):
    """Final retrains finished and running (from the journal, while the search runs)."""
    try:
        con = _existing_journal(work_dir)
        rows = con.execute('SELECT status FROM finals').fetchall()
        con.close()
        return sum(r[0] == 'complete' for r in rows), sum(r[0] == 'running' for r in rows)
    except sqlite3.Error:
        return 0, 0


def test_kill9_during_the_final_retrain_then_resume(tmp_path):
    """Killed while the second final retrain trains: --resume keeps the choice of the
    retrained trials, keeps the finished final (not retrained, same metric) and trains the
    killed one again, once."""
    wd, log = str(tmp_path / 'search'), str(tmp_path / 'trained.log')
    _run_and_kill_when(
        [sys.executable, SCRIPT, wd, log, '--final'], lambda: _at_least(_finals(wd), 1)
    )
    j = SearchJournal.open(wd)
    before = {f['trial_id']: f for f in j.finals()}
    trials_before = {t.id: (t.status, t.metric) for t in j.trials()}
    j.close()
    finished = [tid for tid, f in before.items() if f['status'] == 'complete']
    killed = [tid for tid, f in before.items() if f['status'] == 'running']
    assert len(before) == 2 and len(finished) == 1 and len(killed) == 1

    subprocess.run(
        [sys.executable, SCRIPT, wd, log, '--resume', '--final'], cwd=ROOT, check=True, timeout=300
    )
    j = SearchJournal.open(wd)
    after = {f['trial_id']: f for f in j.finals()}
    assert set(after) == set(before)  # the same trials chosen
    assert all(f['status'] == 'complete' for f in after.values())
    f = finished[0]  # the finished final is kept as it was
    assert (after[f]['metric'], after[f]['attempts']) == (before[f]['metric'], 1)
    assert {t.id: (t.status, t.metric) for t in j.trials()} == trials_before  # no search
    events = [json.loads(line) for line in open(log)]
    ended = [tid for kind, tid, _ in events if kind == 'final_end']
    assert sorted(ended) == sorted(before)  # each final trained to its end exactly once
    k = killed[0]
    outcomes = [e['data']['outcome'] for e in j.events('final_end') if e['trial_id'] == k]
    assert outcomes == ['lost', 'ok'] and after[k]['attempts'] == 2
    assert any(e['kind'] == 'resume' for e in j.events())
