"""The search's optimisers keep only their own part of a trial in the journal; the outcome
is the pool trial's, read by every optimiser, and a reopened journal reopens them."""

import json
import os.path as osp
import shutil
import sqlite3

import pytest

from gpunet_mm.nas import build_optimizer, build_space
from gpunet_mm.nas.objectives import surrogate_accuracy
from gpunet_mm.search.api import arch_hash
from gpunet_mm.search.journal import JOURNAL_FORMAT, JournalError, SearchJournal
from gpunet_mm.search.trial_store import OWN_FIELDS, JournalTrialStore, open_optimizer

from .conftest import ROOT, run_simulated

SPACE = dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384])
#: a search journal written by the layout-1 code (6 of 10 trials of ``sim_cfg``, one worker)
LAYOUT1 = osp.join(ROOT, 'tests', 'search', 'data', 'layout1_search')


def _opt(journal, b=0):
    space = build_space(SPACE)

    def build(store):
        return build_optimizer(dict(type='random'), space, seed=5, minimize=False, store=store)

    return open_optimizer(build, journal, b, space, arch_hash)


def _pool(journal, opt, trials, metric=surrogate_accuracy):
    """Write the pool trials of asked trials and finish them (what a controller does)."""
    for t in trials:
        pt = journal.add_trial(arch_hash(t.params), t.params, 'optimizer:0', 0, t.predicted_cost)
        journal.update_trial(pt.id, 'done', status='complete', metric=metric(t.obj), latency_ms=0.5)


def _run(cfg, work_dir, **kw):
    return run_simulated(cfg, work_dir, workers=1, **kw)


def test_reopening_the_journal_reopens_the_optimiser(tmp_path):
    j = SearchJournal.create(str(tmp_path), dict(x=1))
    opt = _opt(j)
    first = opt.ask(3)
    opt.store.commit(opt.state_dict(with_trials=False))
    _pool(j, opt, first)
    asked = opt.ask(2)  # learns the three first; asked but never committed: killed here
    assert [t.value for t in opt.trials[:3]] == [surrogate_accuracy(t.obj) for t in first]
    want = [t.key for t in asked]
    j.close()

    j = SearchJournal.open(str(tmp_path))
    again = _opt(j)
    assert [t.key for t in again.trials] == [t.key for t in first]
    assert all(t.status == 'pending' for t in again.trials)  # the learning was not committed
    # the state before the lost ask, with the trials it knew: it learns them, asks the same
    assert [t.key for t in again.ask(2)] == want
    assert [t.value for t in again.trials[:3]] == [t.value for t in opt.trials[:3]]
    assert len(_opt(j, b=1).trials) == 0  # another budget's optimiser: its own store
    j.close()


def test_a_search_optimiser_learns_from_the_pool_not_from_tell(tmp_path):
    j = SearchJournal.create(str(tmp_path), dict(x=1))
    opt = _opt(j)
    t = opt.ask(1)[0]
    with pytest.raises(ValueError, match='learns outcomes from its pool trial'):
        opt.tell(t, 1.0)
    assert opt.trials[0].status == 'pending' and opt.n_told == 0  # refused: nothing changed
    j.close()


def test_trials_the_journal_cannot_decode_are_reported(tmp_path):
    j = SearchJournal.create(str(tmp_path), dict(x=1))
    opt = _opt(j)
    t = opt.ask(1)[0]
    row = dict(id=0, x=t.x, pool='nowhere', predicted_cost=None, ask_index=0, tell_index=0)
    j.save_optimizer(0, opt.state_dict(with_trials=False), iter([row]))
    with pytest.raises(ValueError, match=r"optimiser 0 are invalid .*'nowhere', which has not"):
        _opt(j)
    j.close()


def test_a_result_is_stored_once_and_every_optimiser_reads_it(sim_cfg, tmp_path):
    _run(sim_cfg, tmp_path)
    j = SearchJournal.open(str(tmp_path))
    done = [t for t in j.trials(('complete',)) if not t.origin.startswith('reference')]
    target = done[0]
    # the optimisers' rows hold their own fields only: no value, status or cost
    con = sqlite3.connect(str(tmp_path / 'journal.sqlite'))
    rows = [json.loads(r[0]) for r in con.execute('SELECT data FROM optimizer_trials')]
    con.close()
    assert len(rows) >= len(done) and all(set(r) == set(OWN_FIELDS) for r in rows)
    for t in done:  # no second copy of any metric in them
        assert not any(t.metric in r.values() for r in rows), t.id
    # changing the pool trial's metric is what every budget's optimiser sees
    j.update_trial(target.id, 'corrected', metric=target.metric + 5.0)
    space = build_space(sim_cfg['search_space'])
    for b in range(2):

        def build(store):
            return build_optimizer(
                dict(sim_cfg['search_optimizer']), space, minimize=False, store=store
            )

        store = JournalTrialStore(j, b, space, arch_hash)
        opt = build(store)
        store.bind(opt)
        mine = [t for t in opt.trials if store.pool_of(t.id) == target.arch_hash]
        assert len(mine) == 1 and mine[0].value == target.metric + 5.0
    j.close()


def test_a_layout1_journal_is_migrated_and_resumes_exactly(sim_cfg, tmp_path):
    """The layout-1 journal holds 6 trainings of ``sim_cfg``; resumed to 10 it gives what one
    run to 10 gives, and it is layout 2 afterwards (its chain verifying)."""
    part = tmp_path / 'part'
    shutil.copytree(LAYOUT1, part)
    con = sqlite3.connect(str(part / 'journal.sqlite'))
    assert json.loads(con.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0]) == 1
    con.close()
    _run(sim_cfg, tmp_path / 'full')
    _run(sim_cfg, part, resume=True)
    a = SearchJournal.open(str(tmp_path / 'full'))
    b = SearchJournal.open(str(part))
    assert [(t.arch_hash, t.metric) for t in a.trials()] == [
        (t.arch_hash, t.metric) for t in b.trials()
    ]
    assert b.meta('format') == JOURNAL_FORMAT == 2
    assert [t.finished_seq is not None for t in b.trials()] == [
        t.status in ('complete', 'failed', 'infeasible') for t in b.trials()
    ]
    for budget in range(2):
        rows = b.load_optimizer(budget)['trials']
        assert rows and all(set(r) == set(OWN_FIELDS) for r in rows)
    a.close()
    b.close()


def test_a_journal_of_another_layout_is_refused_with_its_version(tmp_path):
    SearchJournal.create(str(tmp_path), dict(x=1)).close()
    con = sqlite3.connect(str(tmp_path / 'journal.sqlite'))
    con.execute("UPDATE meta SET value='7' WHERE key='format'")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match=r'layout version 7; .* reads layout 2 .*new --work-dir'):
        SearchJournal.open(str(tmp_path))
