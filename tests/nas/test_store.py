"""The optimiser keeps no trials of its own: they live in its store (issue 19)."""

import numpy as np
import pytest

from gpunet_mm.nas import build_optimizer, build_space
from gpunet_mm.nas.objectives import ackley
from gpunet_mm.nas.store import MemoryTrialStore, trials_from_dicts

BOX = dict(type='BoxSpace', lower=[-5.0] * 4, upper=[5.0] * 4)


def _run(opt, n):
    for _ in range(n):
        for t in opt.ask(2):
            opt.tell(t, float(ackley(np.asarray(t.x))))


@pytest.mark.parametrize('method', ['lamcts', 'evolution', 'random'])
def test_trials_are_a_read_only_view_of_the_store(method):
    opt = build_optimizer(dict(type=method), build_space(BOX), seed=3)
    _run(opt, 3)
    assert len(opt.trials) == len(opt.store) == 6
    assert [t.id for t in opt.trials] == list(range(6))
    assert opt.trials[5] is opt.store.view()[5]
    assert not hasattr(opt.trials, 'append')  # written through ask/tell/add_trial only
    assert not hasattr(opt, '_keys')  # the store answers "was this point asked?"
    assert opt.store.id_of(opt.trials[2].key) == 2
    assert not opt.is_new(np.asarray(opt.trials[2].x))


@pytest.mark.parametrize('method', ['lamcts', 'evolution', 'random'])
def test_an_optimiser_reopened_on_its_store_asks_what_it_would_have_asked(method):
    """The search's case: the store keeps the trials, the optimiser state only its own
    (RNG, adaptive state); both reopened, the next proposals are the same."""
    space = build_space(BOX)
    a = build_optimizer(dict(type=method), space, seed=1)
    _run(a, 6)
    state = a.state_dict(with_trials=False)
    assert 'trials' not in state
    store = MemoryTrialStore()
    store.replace(trials_from_dicts(space, [t.to_dict() for t in a.trials]))
    b = build_optimizer(dict(type=method), build_space(BOX), seed=1, store=store)
    b.load_state_dict(state)
    assert [t.key for t in b.ask(3)] == [t.key for t in a.ask(3)]


def test_a_state_that_disagrees_with_its_store_is_refused_and_changes_nothing():
    space = build_space(BOX)
    a = build_optimizer('random', space, seed=1)
    _run(a, 2)
    state = a.state_dict(with_trials=False)
    b = build_optimizer('random', build_space(BOX), seed=1)  # an empty store
    with pytest.raises(ValueError, match=r'n_told 4 but 0 told trials in the store'):
        b.load_state_dict(state)
    assert (
        len(b.trials) == 0
        and b.state_dict()['rng']
        == build_optimizer('random', build_space(BOX), seed=1).state_dict()['rng']
    )


def test_the_store_refuses_trials_out_of_order():
    space = build_space(BOX)
    a = build_optimizer('random', space, seed=1)
    _run(a, 1)
    t = a.trials[1]
    with pytest.raises(ValueError, match='allowed: the next id 0'):
        MemoryTrialStore().add(t)
    with pytest.raises(ValueError, match='trial at position 0 has id 1'):
        MemoryTrialStore().replace([t])
