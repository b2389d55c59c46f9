import sqlite3

import pytest

from gpunet_mm.search.journal import JournalError, SearchJournal, config_diff


def _journal(tmp_path, cfg=None):
    return SearchJournal.create(str(tmp_path), cfg or dict(a=1, b=dict(c=2)))


def test_trials_attempts_and_events_persist(tmp_path):
    j = _journal(tmp_path)
    t = j.add_trial('h1', dict(x=1), 'optimizer:0', 0, 1.5)
    n = j.start_attempt(t.id, lease_until=123.0)
    j.end_attempt(t.id, n, 'error', 'boom')
    j.update_trial(t.id, 'complete', status='complete', metric=0.5, result=dict(params=3))
    j.close()
    j = SearchJournal.open(str(tmp_path), dict(a=1, b=dict(c=2)))
    got = j.trial(t.id)
    assert (got.status, got.metric, got.attempts, got.result) == ('complete', 0.5, 1, {'params': 3})
    assert j.attempts(t.id)[0]['outcome'] == 'error'
    kinds = [e['kind'] for e in j.events()]
    assert kinds == ['create', 'propose', 'dispatch', 'attempt_end', 'complete']
    assert j.trial_by_hash('h1').id == t.id and j.trial_by_hash('nope') is None


def test_one_architecture_one_trial(tmp_path):
    j = _journal(tmp_path)
    j.add_trial('h1', {}, 'o', None, None)
    with pytest.raises(sqlite3.IntegrityError):
        j.add_trial('h1', {}, 'o', None, None)
    # the failed insert left neither a row nor an event behind, and the chain still verifies
    assert len(j.trials()) == 1 and len(j.events('propose')) == 1
    j.log('x')
    j.close()
    SearchJournal.open(str(tmp_path))


def test_edited_or_truncated_journal_is_reported_not_overwritten(tmp_path):
    j = _journal(tmp_path)
    for i in range(3):
        j.add_trial(f'h{i}', {}, 'o', None, None)
    j.close()
    path = tmp_path / 'journal.sqlite'
    con = sqlite3.connect(path)
    con.execute("UPDATE events SET data='{}' WHERE seq=3")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match='event 3'):
        SearchJournal.open(str(tmp_path))
    con = sqlite3.connect(path)
    con.execute('DELETE FROM events WHERE seq=2')
    con.commit()
    con.close()
    with pytest.raises(JournalError, match='event 2 is missing'):
        SearchJournal.open(str(tmp_path))
    size = path.stat().st_size
    with pytest.raises(JournalError, match='already holds'):
        _journal(tmp_path)
    assert path.stat().st_size == size


def test_garbage_file_is_named(tmp_path):
    (tmp_path / 'journal.sqlite').write_bytes(b'not a database' * 100)
    with pytest.raises(JournalError, match='journal.sqlite'):
        SearchJournal.open(str(tmp_path))


def test_config_diff_names_dotted_keys():
    assert config_diff(dict(a=1, b=dict(c=2, d=3)), dict(a=1, b=dict(c=5), e=1)) == [
        'b.c',
        'b.d',
        'e',
    ]


def test_optimizer_state_round_trip(tmp_path):
    j = _journal(tmp_path)
    j.save_optimizer(0, dict(seed=1), iter([dict(id=0, v=1), dict(id=1, v=2)]))
    j.save_optimizer(0, dict(seed=2), iter([dict(id=1, v=3)]))
    st = j.load_optimizer(0)
    assert st['seed'] == 2 and st['trials'] == [dict(id=0, v=1), dict(id=1, v=3)]
    assert j.load_optimizer(1) is None


def test_refused_journal_closes_its_connection(tmp_path, monkeypatch):
    """A journal that open() refuses (other config) leaves no sqlite connection behind."""
    with SearchJournal.create(str(tmp_path), {'a': 1}) as j:
        assert j.config == {'a': 1}
    opened = []
    connect = SearchJournal._connect

    def recording(path):
        con = connect(path)
        opened.append(con)
        return con

    monkeypatch.setattr(SearchJournal, '_connect', staticmethod(recording))
    with pytest.raises(JournalError, match='config differs'):
        SearchJournal.open(str(tmp_path), {'a': 2})
    assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match='closed'):
        opened[0].execute('SELECT 1')


# ------------------------------------------------------------------ every table, the head file
def _full_journal(tmp_path):
    """A journal that wrote every covered table: a rung, a promotion, a final retrain and
    two optimiser saves."""
    j = _journal(tmp_path)
    t = j.add_trial('h1', dict(x=1), 'optimizer:0', 0, 1.0)
    n = j.start_attempt(t.id, 1e12, rung=0, start_epochs=0, target_epochs=1)
    j.complete_rung(t.id, n, 0, 1, 1, 0.3, dict(checkpoint='c0'), final=False)
    j.promote(t.id, 1)
    n = j.start_attempt(t.id, 1e12, rung=1, start_epochs=1, target_epochs=3)
    j.complete_rung(t.id, n, 1, 3, 2, 0.4, dict(checkpoint='c1'), final=True)
    j.save_optimizer(0, dict(seed=1), iter([dict(id=0, v=1), dict(id=1, v=2)]))
    j.save_optimizer(0, dict(seed=2), iter([dict(id=1, v=3)]))
    j.add_finals([t.id])
    j.end_final(t.id, j.start_final(t.id), 'error', error='oom', retry=True)
    j.end_final(t.id, j.start_final(t.id), 'ok', metric=0.5, result=dict(r=1))
    j.close()
    return tmp_path / 'journal.sqlite'


def _sql(path, *statements):
    con = sqlite3.connect(path)
    for q in statements:
        con.execute(q)
    con.commit()
    con.close()


@pytest.mark.parametrize(
    'edit, message',
    [
        ('UPDATE optimizer_state SET state=\'{"seed":9}\'', 'optimiser state of budget 0: state'),
        (
            'UPDATE optimizer_trials SET data=\'{"id":0,"v":9}\' WHERE opt_id=0',
            'optimiser trial 0 of budget 0: data',
        ),
        ('DELETE FROM optimizer_trials WHERE opt_id=1', 'optimiser trial 1 of budget 0 is missing'),
        ("INSERT INTO optimizer_state VALUES (3, '{}')", 'budget 3 is not in the events'),
        ('UPDATE rung_results SET metric=0.9 WHERE rung=0', 'rung 0 result of trial 1: metric'),
        ("UPDATE rung_results SET result='{}' WHERE rung=1", 'result of trial 1: result_digest'),
        ('UPDATE rung_attempts SET epochs_trained=5', 'epochs_trained is 5, the events say'),
        ('DELETE FROM promotions', 'promotion of trial 1 to rung 1 is missing'),
        ('UPDATE finals SET metric=0.99', 'final retrain of trial 1: metric is 0.99'),
        ('UPDATE finals SET failures=0', 'final retrain of trial 1: failures is 0'),
        ("UPDATE trials SET result='{}'", 'trial 1 result_digest'),
        # the order the optimisers learn finished trials in is covered too
        ('UPDATE trials SET finished_seq=finished_seq+1', 'trial 1 finished_seq is'),
        ('UPDATE trials SET finished_seq=NULL', 'trial 1 finished_seq is None'),
    ],
)
def test_every_table_results_or_state_come_from_is_covered(tmp_path, edit, message):
    path = _full_journal(tmp_path)
    SearchJournal.open(str(tmp_path)).close()  # as written, it verifies
    _sql(path, edit)
    with pytest.raises(JournalError, match=message):
        SearchJournal.open(str(tmp_path))


def test_a_trial_records_the_event_it_first_finished_at(tmp_path):
    """The optimisers learn finished trials in this order: a rung result finishes a trial
    once; a promotion and a later rung do not move it."""
    _full_journal(tmp_path)
    with SearchJournal.open(str(tmp_path)) as j:
        first = [e['seq'] for e in j.events('rung_complete')][0]
        assert j.trial(1).finished_seq == first
        assert [r['id'] for r in j.finished_since(0)] == [1]
        assert j.finished_since(first) == []
        assert j.finished_since(0)[0]['first_metric'] == 0.3  # rung 0's, not the top rung's


def test_deleted_last_events_and_their_head_are_found(tmp_path):
    """The last events deleted with the ``meta`` head rewritten to match (a consistent,
    truncated database): the head file next to it shows the truncation."""
    path = _full_journal(tmp_path)
    last = sqlite3.connect(path).execute('SELECT MAX(seq) FROM events').fetchone()[0]
    keep = last - 5
    _sql(
        path,
        f'DELETE FROM events WHERE seq > {keep}',
        "UPDATE meta SET value=(SELECT json_object('seq', seq, 'hash', hash) FROM events "
        f"WHERE seq={keep}) WHERE key='chain_head'",
    )
    truncated = rf'says the last event is {last}, but the events end at {keep}'
    with pytest.raises(JournalError, match=truncated):
        SearchJournal.open(str(tmp_path))
    head = tmp_path / 'journal.sqlite.head'
    head.unlink()  # and without its head file: refused too, never taken as a fresh journal
    with pytest.raises(JournalError, match='head file .* is missing'):
        SearchJournal.open(str(tmp_path))
    head.write_text('{"seq": "x"}')
    with pytest.raises(JournalError, match='is not one'):
        SearchJournal.open(str(tmp_path))


_KILLED = """
import os, signal, sys
import gpunet_mm.search.journal as J
j = J.SearchJournal.create(sys.argv[1], dict(a=1))
j.add_trial('h0', {}, 'o', None, None)
if sys.argv[2] == 'after-commit':
    J._write_head = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
else:  # mid-write: the temporary head file is written, the rename never happens
    J.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
j.add_trial('h1', {}, 'o', None, None)
"""


@pytest.mark.parametrize('where', ['after-commit', 'mid-write'])
def test_kill9_between_commit_and_head_file_still_resumes(tmp_path, where):
    """A kill -9 after the commit and before (or during) the head file's replacement leaves
    the file one transaction behind: the journal opens with everything committed, and the
    next write brings the head file up to date."""
    import json
    import subprocess
    import sys

    from .conftest import ROOT

    wd = tmp_path / 'search'
    p = subprocess.run([sys.executable, '-c', _KILLED, str(wd), where], cwd=ROOT, timeout=120)
    assert p.returncode == -9
    behind = json.loads((wd / 'journal.sqlite.head').read_text())['seq']
    j = SearchJournal.open(str(wd))
    assert [t.arch_hash for t in j.trials()] == ['h0', 'h1'] and j._last_seq == behind + 1
    j.log('resume')
    j.close()
    assert json.loads((wd / 'journal.sqlite.head').read_text())['seq'] == behind + 2
    SearchJournal.open(str(wd)).close()
