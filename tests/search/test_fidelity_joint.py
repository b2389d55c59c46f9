"""``nas.fidelity.model='joint'``: the optimisers model every point at the top rung,
predicted by one model of every rung's results that takes the rung as an input."""

import copy

import numpy as np
import pytest
from scipy.stats import kendalltau

from gpunet_mm.search import SearchJournal
from gpunet_mm.search.fidelity import Rungs, joint_values, make_rungs
from gpunet_mm.search.trainer import SearchConfigError

from .conftest import rung_trainer
from .test_fidelity import _fid_cfg, _run

EPOCHS = (1, 3, 9)


def _crossing_curves(n=60, seed=0):
    """A known function whose short rungs mis-rank: the final value is ``2 x0 + x1`` and a
    point climbs slower the larger ``x0`` (bigger networks), so at the first rung the order
    in ``x0`` is reversed. Every point has rung 0, a third rung 1, a sixth the top."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    final = 2 * X[:, 0] + X[:, 1]
    keys = [f'p{i}' for i in range(n)]
    by_rung = {}
    for k, e in enumerate(EPOCHS):
        f = np.log(e) / np.log(EPOCHS[-1])
        v = final - 3.0 * (1 - f) * (0.2 + X[:, 0]) + 0.05 * (1 - f) * rng.standard_normal(n)
        keep = range(n) if k == 0 else range(0, n, 3 if k == 1 else 6)
        by_rung[k] = {keys[i]: float(v[i]) for i in keep}
    features = {key: X[i].tolist() for i, key in enumerate(keys)}
    return keys, final, features, by_rung


def test_the_joint_model_ranks_the_top_rung_better_than_the_first_rung_does():
    keys, final, features, by_rung = _crossing_curves()
    out = joint_values(features, by_rung, EPOCHS)
    assert set(out) == set(keys)  # every point with a rung result gets a top-rung value
    for key, v in by_rung[2].items():  # the top rung's own results are kept as measured
        assert out[key] == v
    lower = [i for i, key in enumerate(keys) if key not in by_rung[2]]
    tau_rung0 = kendalltau([by_rung[0][keys[i]] for i in lower], final[lower]).statistic
    tau_joint = kendalltau([out[keys[i]] for i in lower], final[lower]).statistic
    assert tau_rung0 < 0  # the first rung reverses the order of the slow climbers
    assert tau_joint > 0.6 and tau_joint > tau_rung0 + 0.6


def test_joint_values_need_results_and_features():
    _, _, features, by_rung = _crossing_curves(n=6)
    # fewer than three results with features: only the top rung's measured values
    assert joint_values({}, by_rung, EPOCHS) == by_rung[2]
    r = Rungs(EPOCHS, 3, 2, model='joint')
    # without the points' features the store cannot use the joint model: BOHB's rung
    assert r.model_values(by_rung, 1) == by_rung[1]
    assert set(r.model_values(by_rung, 1, features)) == set(by_rung[0])


def test_a_search_with_the_joint_model_shows_every_point_at_the_top_rung(
    sim_cfg, tmp_path, monkeypatch
):
    from gpunet_mm.search.trial_store import JournalTrialStore

    seen = []
    refresh = JournalTrialStore.refresh

    def recording_refresh(self):
        refresh(self)
        offered = self.modelled_values()
        if offered is None:
            return
        rung_of = {}  # the highest rung each of this optimiser's points reached so far
        for r in self.journal.rung_results():
            own = self._pool.get(r['arch_hash'])
            if own is not None and r['metric'] is not None:
                key = self._trials[own].key
                rung_of[key] = max(rung_of.get(key, 0), r['rung'])
        seen.append((dict(offered), rung_of))

    monkeypatch.setattr(JournalTrialStore, 'refresh', recording_refresh)
    cfg = _fid_cfg(copy.deepcopy(sim_cfg), min_observations=2, model='joint')
    cfg['nas'].update(num_trials=16, ask_batch=1)
    _run(cfg, tmp_path, rung_trainer(), workers=1)
    assert seen, 'the optimisers were never shown the joint model'
    offered, rung_of = seen[-1]
    # every point with a result is shown, the ones that never left the first rung too
    # (BOHB's rule would show only one higher rung's points)
    assert set(offered) == set(rung_of)
    assert any(k == 0 for k in rung_of.values()) and any(k > 0 for k in rung_of.values())
    j = SearchJournal.open(str(tmp_path))
    top = {r['metric'] for r in j.rung_results() if r['rung'] == 2}
    shown_top = [offered[key] for key, k in rung_of.items() if k == 2]
    assert set(shown_top) <= top  # a point at the top rung is shown its measured value


@pytest.mark.parametrize(
    'value, match',
    [
        ('gp', r"nas.fidelity.model: got 'gp'; allowed: 'rung', 'offset' or 'joint'"),
        (1, r'nas.fidelity.model: got 1; allowed:'),
    ],
)
def test_a_bad_model_is_refused_naming_the_value(value, match):
    with pytest.raises(SearchConfigError, match=match):
        make_rungs(dict(min_epochs=1, model=value), 9)
