"""The search's optimisers keep their trials in the journal and are reopened from it."""

import pytest

from gpunet_mm.nas import build_optimizer, build_space
from gpunet_mm.nas.objectives import surrogate_accuracy
from gpunet_mm.search.journal import SearchJournal
from gpunet_mm.search.trial_store import JournalTrialStore, open_optimizer

SPACE = dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384])


def _opt(journal, b=0):
    space = build_space(SPACE)

    def build(store):
        return build_optimizer(dict(type='random'), space, seed=5, minimize=False, store=store)

    return open_optimizer(build, journal, b, space)


def _tell(opt, trials):
    for t in trials:
        opt.tell(t, surrogate_accuracy(t.obj))


def test_reopening_the_journal_reopens_the_optimiser(tmp_path):
    j = SearchJournal.create(str(tmp_path), dict(x=1))
    opt = _opt(j)
    _tell(opt, opt.ask(3))
    opt.store.commit(opt.state_dict(with_trials=False))
    asked = opt.ask(2)  # asked but never committed: a controller killed right here
    want = [t.key for t in asked]
    j.close()

    j = SearchJournal.open(str(tmp_path))
    again = _opt(j)
    assert [t.key for t in again.trials] == [t.key for t in opt.trials[:3]]
    assert [t.value for t in again.trials] == [t.value for t in opt.trials[:3]]
    # the state before the lost ask, with the trials it knew: the same ask again
    assert [t.key for t in again.ask(2)] == want
    assert len(_opt(j, b=1).trials) == 0  # another budget's optimiser: its own store
    j.close()


def test_trials_the_journal_cannot_decode_are_reported(tmp_path):
    j = SearchJournal.create(str(tmp_path), dict(x=1))
    opt = _opt(j)
    _tell(opt, opt.ask(1))
    row = dict(opt.trials[0].to_dict(), status='done')
    j.save_optimizer(0, opt.state_dict(with_trials=False), iter([row]))
    with pytest.raises(ValueError, match=r"optimiser 0 are invalid .*status: got 'done'"):
        JournalTrialStore(j, 0, build_space(SPACE))
    j.close()
