"""The optimiser state keeps its promises (issue: trust boundary, nas/base.py)."""

import json

import numpy as np
import pytest

from gpunet_mm.nas import BoxSpace, LaMCTSBO, RandomSearch


def _opt(seed=0, cls=RandomSearch):
    return cls(BoxSpace(-1.0, 1.0, dims=3), seed=seed)


def test_tell_refuses_a_trial_of_another_optimiser():
    a, b = _opt(0), _opt(1)
    ta, tb = a.ask(1)[0], b.ask(1)[0]
    assert ta.id == tb.id == 0 and ta.key != tb.key
    with pytest.raises(ValueError, match='another point'):
        a.tell(tb, 1.0)
    assert a.trials[0].status == 'pending'  # nothing was recorded
    a.tell(ta, 1.0)


def test_negative_measured_cost_is_refused():
    opt = _opt()
    t = opt.ask(1)[0]
    with pytest.raises(ValueError, match='negative'):
        opt.tell(t, 1.0, cost=-0.5)
    with pytest.raises(ValueError, match='negative'):
        opt.add_trial(np.zeros(3), 1.0, cost=-1)
    assert opt.trials[0].status == 'pending' and len(opt.trials) == 1


def test_load_of_an_incomplete_state_leaves_the_optimiser_whole(tmp_path):
    opt = _opt(cls=LaMCTSBO)
    for t in opt.ask(4):
        opt.tell(t, float(np.sum(np.square(t.x))))
    before = json.dumps(opt.state_dict(), sort_keys=True)
    other = _opt(cls=LaMCTSBO)
    for t in other.ask(2):
        other.tell(t, 0.0)
    state = other.state_dict()
    for broken in (
        {k: v for k, v in state.items() if k != 'rng'},  # a missing field
        dict(state, extra={}),  # extra state without its fields
        dict(state, trials=state['trials'] + [dict(state['trials'][0], status='weird')]),
    ):
        with pytest.raises(ValueError, match='nothing was loaded'):
            opt.load_state_dict(broken)
        assert json.dumps(opt.state_dict(), sort_keys=True) == before


def test_truncated_state_file_names_its_path(tmp_path):
    opt = _opt()
    opt.tell(opt.ask(1)[0], 1.0)
    path = tmp_path / 'state.json'
    opt.save(str(path))
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match=str(path)):
        _opt().load(str(path))


def test_state_without_trials_plus_stored_trials_continues_identically():
    """The journal's split: small state and trials stored apart, rebuilt together."""
    a = _opt(cls=LaMCTSBO)
    for t in a.ask(5):
        a.tell(t, float(np.sum(t.x)))
    small = a.state_dict(with_trials=False)
    assert 'trials' not in small
    b = _opt(cls=LaMCTSBO)
    b.load_state_dict(dict(small, trials=[t.to_dict() for t in a.trials]))
    assert [t.key for t in a.ask(3)] == [t.key for t in b.ask(3)]
