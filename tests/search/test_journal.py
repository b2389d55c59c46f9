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
