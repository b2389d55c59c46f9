"""A full disk stops the search cleanly and loses nothing.

Wherever the search writes (a worker's checkpoint, the journal, the latency cache, the hub)
"no space left" is a failure every attempt would repeat: the search halts at the first
one, charges nothing for it, queues its candidate again, and ``--resume`` after space is
freed continues without re-training what finished. No disk is filled: the workers raise
the ``OSError`` a full disk raises, and the SQLite files get a real ``SQLITE_FULL`` from a
page limit (``PRAGMA max_page_count``) pinned at their current size.
"""

from __future__ import annotations

import errno
import os
import pickle
import sqlite3

import pytest

from gpunet_mm.deploy.cache import LatencyCacheError
from gpunet_mm.search import LocalExecutor, SearchJournal
from gpunet_mm.search.api import run_search
from gpunet_mm.search.controller import SearchHalted
from gpunet_mm.search.executor import systemic_cause
from gpunet_mm.search.faults import disk_full, disk_full_reason
from gpunet_mm.search.journal import JournalWriteError

from .conftest import FakeLatency, run_simulated, rung_trainer

ENOSPC_TEXT = os.strerror(errno.ENOSPC)


def _cfg(sim_cfg, **nas):
    from .conftest import fidelity_cfg

    return fidelity_cfg(sim_cfg, 10, **nas)


def _trained_epochs(j):
    rows = j.con.execute(
        'SELECT r.epochs_trained FROM attempts a JOIN rung_attempts r ON '
        "a.trial_id=r.trial_id AND a.attempt=r.attempt WHERE a.outcome='ok'"
    )
    return sum(r[0] for r in rows)


def _rung_results(work_dir):
    with SearchJournal.open(str(work_dir)) as j:
        return {(r['trial_id'], r['rung']): r['metric'] for r in j.rung_results()}


# ---------------------------------------------------------------------- the recogniser
def _raised(outer, inner, explicit=True):
    """``outer`` raised from (or while handling) ``inner``, as a real raise chains them."""
    try:
        try:
            raise inner
        except BaseException as e:
            if explicit:
                raise outer from e
            raise outer  # noqa: B904 (the implicit __context__ is what is tested)
    except BaseException as e:
        return e


def _real_sqlite_full(tmp_path):
    con = sqlite3.connect(str(tmp_path / 'full.db'), isolation_level=None)
    con.execute('CREATE TABLE t (x TEXT)')
    pages = con.execute('PRAGMA page_count').fetchone()[0]
    con.execute(f'PRAGMA max_page_count={pages}')
    try:
        con.execute('INSERT INTO t VALUES (?)', ('x' * 100_000,))
    except sqlite3.OperationalError as e:
        return e
    finally:
        con.close()
    raise AssertionError('the page limit did not fill the database')


def test_disk_full_recognises_errno_quota_sqlite_and_chains(tmp_path):
    full = disk_full(OSError(errno.ENOSPC, ENOSPC_TEXT, '/data/ckpt/epoch_3.pth'))
    assert (full.path, full.errno) == ('/data/ckpt/epoch_3.pth', errno.ENOSPC)
    quota = disk_full_reason(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), '/home/u/x'))
    assert 'could not write /home/u/x' in quota and 'quota' in quota

    real = _real_sqlite_full(tmp_path)  # SQLite's own SQLITE_FULL, code and message
    assert real.sqlite_errorcode == sqlite3.SQLITE_FULL and disk_full(real).path is None
    assert disk_full(sqlite3.OperationalError('database or disk is full')) is not None

    # wrapped: the path comes from the wrapper, the verdict from what it wraps
    cache = _raised(LatencyCacheError('latency cache /c/l.sqlite failed', '/c/l.sqlite'), real)
    assert disk_full(cache).path == '/c/l.sqlite'
    implicit = _raised(RuntimeError('saving failed'), OSError(errno.ENOSPC, 'x'), explicit=False)
    assert implicit.__cause__ is None and disk_full(implicit) is not None
    deep = _raised(ValueError('outer'), _raised(KeyError('middle'), OSError(errno.EDQUOT, 'q')))
    assert disk_full(deep).errno == errno.EDQUOT
    # only the text survived (a torchrun trial's stderr, a Ray traceback)
    text = RuntimeError(f'torchrun trial failed (exit 1): OSError: [Errno 28] {ENOSPC_TEXT}')
    assert disk_full(text) is not None

    # the reason names the file and what to do; systemic_cause stops the search on it
    reason = systemic_cause(OSError(errno.ENOSPC, ENOSPC_TEXT, '/wd/trials/0003'))
    assert 'disk is full' in reason and '/wd/trials/0003' in reason and 'free space' in reason


@pytest.mark.parametrize(
    'exc',
    [
        ValueError('invalid literal'),
        OSError(errno.ENOENT, 'No such file or directory', '/data/x'),
        FileNotFoundError('resume checkpoint'),
        PermissionError(errno.EACCES, 'Permission denied', '/wd'),
        sqlite3.OperationalError('database is locked'),
        RuntimeError('the model is out of its depth'),
    ],
)
def test_other_errors_are_not_a_full_disk(exc):
    assert disk_full(exc) is None and disk_full_reason(exc) is None
    assert systemic_cause(exc) is None


def test_the_worker_error_keeps_errno_and_path_across_processes(tmp_path):
    """What ``run_trial`` raises for a full disk survives pickling (Ray's transport), which
    drops ``__cause__``: the errno and the file are fields of the ``OSError`` itself."""
    inner = _raised(RuntimeError('mmengine: saving failed'), OSError(errno.ENOSPC, ENOSPC_TEXT))
    err = disk_full(inner).as_oserror('/wd/trials/0004/attempt_1')
    back = pickle.loads(pickle.dumps(err))
    assert back.errno == errno.ENOSPC and back.filename == '/wd/trials/0004/attempt_1'
    assert disk_full(back).path == '/wd/trials/0004/attempt_1'
    assert str(back).count(ENOSPC_TEXT) == 1


def test_run_trial_names_its_folder_when_the_disk_fills(tmp_path, monkeypatch):
    from gpunet_mm.search import worker

    def no_space(task, work_dir):
        raise RuntimeError('checkpoint failed') from OSError(errno.ENOSPC, ENOSPC_TEXT)

    monkeypatch.setattr(worker, '_train', no_space)
    monkeypatch.setattr('gpunet_mm.apis.runner.check_dataset_files', lambda *a: None)
    task = dict(trial_id=3, attempt=2, arch={}, cfg={}, work_dir=str(tmp_path))
    with pytest.raises(OSError) as info:
        worker.run_trial(task)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == worker.trial_dir(str(tmp_path), 3, 2)


# ---------------------------------------------------------------------- the journal
class _FullCommit:
    """The journal's connection, whose next ``COMMIT`` fails as a full disk fails it."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args):
        if sql == 'COMMIT':
            raise sqlite3.OperationalError('database or disk is full')
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_a_failed_commit_is_rolled_back_and_names_the_journal(tmp_path):
    j = SearchJournal.create(str(tmp_path), {'a': 1})
    t = j.add_trial('h1', {'x': 1}, 'optimizer:0', 0, 1.0)
    seq, digest = j._last_seq, j._last_hash
    real = j.con
    j.con = _FullCommit(real)
    with pytest.raises(JournalWriteError) as info:
        j.update_trial(t.id, 'measured', status='queued', latency_ms=1.5)
    j.con = real
    assert info.value.filename == j.path and 'rolled back' in str(info.value)
    assert (j._last_seq, j._last_hash) == (seq, digest) and not real.in_transaction
    assert j.trial(t.id).status == 'proposed' and j.trial(t.id).latency_ms is None
    j.update_trial(t.id, 'measured', status='queued', latency_ms=1.5)  # space freed
    j.close()
    with SearchJournal.open(str(tmp_path)) as j:  # its chain and tables verify
        assert j.trial(t.id).latency_ms == 1.5


def test_a_head_file_that_does_not_fit_leaves_the_commit_and_a_journal_that_opens(
    tmp_path, monkeypatch
):
    """The change is committed; only the head file (replaced after each commit) is behind,
    which opening accepts (the same state as a kill between the two)."""
    from gpunet_mm.search import journal

    j = SearchJournal.create(str(tmp_path), {'a': 1})
    t = j.add_trial('h1', {'x': 1}, 'optimizer:0', 0, 1.0)
    write_head = journal._write_head

    def no_space(path, seq, digest):
        raise OSError(errno.ENOSPC, ENOSPC_TEXT)

    monkeypatch.setattr(journal, '_write_head', no_space)
    with pytest.raises(JournalWriteError, match='the change itself is committed') as info:
        j.update_trial(t.id, 'measured', status='queued', latency_ms=1.5)
    assert info.value.filename == journal.head_path(j.path)
    monkeypatch.setattr(journal, '_write_head', write_head)
    j.close()
    with SearchJournal.open(str(tmp_path)) as j:
        assert j.trial(t.id).status == 'queued' and j.trial(t.id).latency_ms == 1.5
        j.log('next')  # the next commit brings the head file up to date
    SearchJournal.open(str(tmp_path)).close()


def test_a_journal_that_cannot_be_created_leaves_nothing_behind(tmp_path, monkeypatch):
    from gpunet_mm.search import journal

    def no_space(path, seq, digest):
        raise OSError(errno.ENOSPC, ENOSPC_TEXT)

    monkeypatch.setattr(journal, '_write_head', no_space)
    with pytest.raises(JournalWriteError, match='run the same command again'):
        SearchJournal.create(str(tmp_path), {'a': 1})
    assert os.listdir(tmp_path) == []  # the same command works once space is freed


# ---------------------------------------------------------------------- the search
def test_a_worker_out_of_space_halts_at_once_charges_nothing_and_resumes(sim_cfg, tmp_path):
    """A worker's checkpoint write hits ENOSPC mid-training: not the candidate's failure
    (each next one would fail alike, charged), but a stop at the first one."""
    cfg = _cfg(sim_cfg)
    train, calls = rung_trainer(), []

    def filling(task):
        calls.append(task.trial_id)
        if len(calls) > 4:
            ckpt = f'/wd/trials/{task.trial_id:04d}/attempt_{task.attempt}/epoch_1.pth'
            raise RuntimeError('mmengine: save_checkpoint failed') from OSError(
                errno.ENOSPC, ENOSPC_TEXT, ckpt
            )
        return train(task)

    with pytest.raises(SearchHalted) as info:
        run_simulated(cfg, tmp_path, workers=1, trainer=filling)
    msg = str(info.value)
    assert 'the disk is full: could not write /wd/trials/' in msg and 'free space' in msg
    assert '--resume' in msg and 'not charged' in msg
    assert len(calls) == 5  # the first full disk stopped it: nothing else was sent
    j = SearchJournal.open(str(tmp_path))
    stopped = calls[-1]
    assert [a['outcome'] for a in j.attempts(stopped)] == ['halted']
    assert j.trial(stopped).status == 'queued' and j.failures(stopped) == 0
    assert not j.trials(('failed',))
    assert j.compute_epochs() == (_trained_epochs(j), 0.0)  # what 4 trainings added
    before = _rung_results(tmp_path)
    j.close()

    log = []  # space freed: --resume trains the stopped one, re-trains nothing else
    s = run_simulated(cfg, tmp_path, workers=1, trainer=rung_trainer(log), resume=True)
    assert (stopped, 2, 0, 1) in log
    assert not {(t, end) for t, _, _, end in log} & {(t, 1) for t, _ in before}
    after = _rung_results(tmp_path)
    assert all(after[k] == v for k, v in before.items())  # no rung result lost or changed
    assert s['trials_by_status'].get('failed', 0) == 0
    with SearchJournal.open(str(tmp_path)) as j:
        assert s['compute_epochs'] == _trained_epochs(j)  # nothing charged for the halt


class SavingExecutor(LocalExecutor):
    """The in-process executor whose workers leave each result behind, as the real ones
    leave ``trial_result.json`` in their attempt's folder."""

    def __init__(self, fn, num_workers):
        self.saved = {}

        def saving(task):
            self.saved[task.trial_id, task.attempt] = out = fn(task)
            return out

        super().__init__(saving, num_workers)

    def recovered(self, task):
        return self.saved.get((task.trial_id, task.attempt))


def test_a_full_journal_halts_rolls_back_and_resume_loses_nothing(sim_cfg, tmp_path, monkeypatch):
    """The controller's own disk fills: the journal's write of a rung result fails with a
    real ``SQLITE_FULL`` and is rolled back; the search halts naming the journal, and
    ``--resume`` takes the saved result instead of training it again."""
    cfg = _cfg(sim_cfg)
    disk = dict(full=False)
    complete_rung = SearchJournal.complete_rung

    def limited(self, *a, **k):
        if disk['full']:  # no page beyond the file's current size
            pages = self.con.execute('PRAGMA page_count').fetchone()[0]
            self.con.execute(f'PRAGMA max_page_count={pages}')
        return complete_rung(self, *a, **k)

    monkeypatch.setattr(SearchJournal, 'complete_rung', limited)
    train, log = rung_trainer(), []

    def filling(task):
        log.append((task.trial_id, task.payload['epochs']))
        out = train(task)
        if len(log) == 5:  # this result is the one the journal has no room for
            disk['full'] = True
            out['log'] = 'x' * 200_000
        return out

    ex = SavingExecutor(filling, num_workers=2)
    with pytest.raises(SearchHalted) as info:
        run_search(
            cfg,
            str(tmp_path),
            simulate=True,
            executor=ex,
            latency=FakeLatency(),
            write_reports=False,
        )
    journal = str(tmp_path / 'journal.sqlite')
    msg = str(info.value)
    assert f'the disk is full: could not write {journal}' in msg and '--resume' in msg
    full_trial, full_rung = log[4][0], [1, 3, 9].index(log[4][1])
    j = SearchJournal.open(str(tmp_path))  # consistent: the failed write left no trace
    assert (full_trial, full_rung) not in {(r['trial_id'], r['rung']) for r in j.rung_results()}
    assert j.trial(full_trial).status == 'running'  # its outcome is still to be recorded
    j.close()
    before = _rung_results(tmp_path)
    trained_before = set(log)

    disk['full'] = False  # space freed
    log.clear()
    ex2 = SavingExecutor(lambda t: (log.append((t.trial_id, t.payload['epochs'])), train(t))[1], 2)
    ex2.saved = ex.saved  # the workers' folders are still there
    s = run_search(
        cfg,
        str(tmp_path),
        simulate=True,
        executor=ex2,
        latency=FakeLatency(),
        write_reports=False,
        resume=True,
    )
    assert not set(log) & trained_before  # nothing that finished is trained again
    after = _rung_results(tmp_path)
    assert (full_trial, full_rung) in after  # the result the full disk could not record
    assert all(after[k] == v for k, v in before.items())
    assert s['trials_by_status'].get('failed', 0) == 0


def test_a_full_latency_cache_halts_and_leaves_the_proposals(sim_cfg, tmp_path, monkeypatch):
    """The latency cache's SQLite file cannot grow: ``LatencyCacheError`` (from a real
    ``SQLITE_FULL``) stops the search naming the cache; ``--resume`` measures the rest."""
    from gpunet_mm.deploy import cache as cache_mod
    from gpunet_mm.deploy.backends.base import LatencyResult
    from gpunet_mm.deploy.cache import LatencyCache, LatencyKey

    path = str(tmp_path / 'cache' / 'latency.sqlite')
    disk = dict(full=False, fill=True)
    connect = cache_mod.LatencyCache._connect

    def limited(self):
        con = connect(self)
        if disk['full']:
            pages = con.execute('PRAGMA page_count').fetchone()[0]
            con.execute(f'PRAGMA max_page_count={pages}')
        return con

    monkeypatch.setattr(cache_mod.LatencyCache, '_connect', limited)

    class CachedLatency(FakeLatency):
        """Every measurement goes through the latency cache, as LatencyService's do."""

        def __init__(self):
            super().__init__()
            self.cache = LatencyCache(path)

        def measure(self, archs):
            out = super().measure(archs)
            if len(self.measured) > 6 and disk['fill']:
                disk['full'], disk['fill'] = True, False
            for d, r in zip(archs, out):
                key = LatencyKey(str(sorted(d.items())), (320, 320), 1, 'fp32', 'fake', 'cpu')
                res = LatencyResult.from_times(
                    [r['latency_ms']] * 3,
                    backend='fake',
                    warmup=0,
                    precision='fp32',
                    batch=1,
                    shape=(320, 320),
                    env={'pad': 'x' * 20_000},  # a row that needs new pages
                )
                self.cache.put(key, res)
            return out

    cfg = _cfg(sim_cfg)
    first, log = [], []
    ex = LocalExecutor(rung_trainer(first), num_workers=1)
    with pytest.raises(SearchHalted) as info:
        run_search(
            cfg,
            str(tmp_path / 'wd'),
            simulate=True,
            executor=ex,
            latency=CachedLatency(),
            write_reports=False,
        )
    msg = str(info.value)
    assert f'could not write {path}' in msg and 'disk is full' in msg and '--resume' in msg
    with SearchJournal.open(str(tmp_path / 'wd')) as j:
        assert not j.trials(('failed',))
        assert all(t.error is None or 'latency' not in t.error for t in j.trials())
        assert j.trials(('proposed',))  # left for --resume to measure
    before = _rung_results(tmp_path / 'wd')
    assert before and first

    disk['full'] = False
    s = run_search(
        cfg,
        str(tmp_path / 'wd'),
        simulate=True,
        executor=LocalExecutor(rung_trainer(log), num_workers=1),
        latency=CachedLatency(),
        write_reports=False,
        resume=True,
    )
    assert s['trials_by_status'].get('failed', 0) == 0
    assert s['trials_by_status'].get('proposed', 0) == 0
    trained = {(t, end) for t, _, _, end in first}
    assert log and not {(t, end) for t, _, _, end in log} & trained  # nothing trained again
    after = _rung_results(tmp_path / 'wd')
    assert all(after[k] == v for k, v in before.items())


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full (Linux)')
def test_a_full_disk_while_writing_the_reports_halts_and_resume_writes_them(
    sim_cfg, tmp_path, monkeypatch
):
    """The search finished; ``trials.csv`` does not fit. The journal keeps every result:
    ``--resume`` trains nothing and writes the reports."""
    from gpunet_mm import atomic_write

    cfg = _cfg(sim_cfg)
    write = atomic_write.atomic_write_bytes

    def full(path, data):
        if path.endswith('trials.csv'):
            with atomic_write.atomic_path(path), open('/dev/full', 'wb') as f:
                f.write(data)  # the write() of a full disk: ENOSPC, no file named
                f.flush()
        return write(path, data)

    monkeypatch.setattr(atomic_write, 'atomic_write_bytes', full)
    with pytest.raises(SearchHalted) as info:
        run_simulated(cfg, tmp_path, workers=1, trainer=rung_trainer(), write_reports=True)
    assert f'could not write {tmp_path / "trials.csv"}' in str(info.value)
    assert not (tmp_path / 'trials.csv').exists() and not (tmp_path / 'summary.json').exists()
    done = _rung_results(tmp_path)
    assert done

    monkeypatch.setattr(atomic_write, 'atomic_write_bytes', write)
    log = []
    s = run_simulated(
        cfg, tmp_path, workers=1, trainer=rung_trainer(log), write_reports=True, resume=True
    )
    assert log == [] and _rung_results(tmp_path) == done
    assert (tmp_path / 'trials.csv').exists() and (tmp_path / 'summary.json').exists()
    assert s['trials_by_status'].get('failed', 0) == 0


def test_the_command_line_stops_with_the_path_and_the_command_that_continues(
    tmp_path, monkeypatch, capsys
):
    """``--final WORK_DIR`` (a search's final retrain, from its journal alone): the
    journal's disk fills mid-way; exit 2, no traceback, the journal named, the command
    that continues; run again, it retrains only what did not finish."""
    import os.path as osp

    from .conftest import nas_search_tool, searched_for_final

    cli = nas_search_tool()
    wd = str(tmp_path / 'wd')
    searched_for_final(wd)
    event, ends = SearchJournal._event, []

    def full_once(self, kind, trial_id, data):
        if kind == 'final_end':  # inside end_final's transaction, after its UPDATE
            ends.append(trial_id)
            if len(ends) == 2:
                raise sqlite3.OperationalError('database or disk is full')
        return event(self, kind, trial_id, data)

    monkeypatch.setattr(SearchJournal, '_event', full_once)
    argv = ['--final', wd, '--no-progress', '--cfg-options', 'nas.final.top_k=2']
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and err.count('nas_search: error:') == 1
    assert f'could not write {osp.join(wd, "journal.sqlite")}' in err and 'free space' in err
    assert f'python tools/nas_search.py --final {wd}' in err
    with SearchJournal.open(wd) as j:
        done = {f['trial_id']: f['attempts'] for f in j.finals() if f['status'] == 'complete'}
    assert len(done) >= 1

    monkeypatch.setattr(SearchJournal, '_event', event)  # space freed
    assert cli.main(argv) == 0
    with SearchJournal.open(wd) as j:
        finals = {f['trial_id']: f for f in j.finals()}
    assert all(f['status'] == 'complete' for f in finals.values())
    assert all(finals[t]['attempts'] == n for t, n in done.items())  # not retrained
