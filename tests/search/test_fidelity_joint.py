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


# ---------------------------------------------------------------------- promote='joint'
def _rung_rows(by_rung, ids):
    return [
        dict(trial_id=ids[key], rung=k, metric=v, latency_ms=1.0)
        for k, d in by_rung.items()
        for key, v in d.items()
    ]


def test_promote_joint_ranks_a_slow_climber_above_a_fast_starter():
    """The model has seen points climb (the crossing curves: the larger ``x0``, the slower
    the climb); a fast starter that ends low and a slow climber that ends high, both at the
    first rung only: ranked by the joint model's top-rung value (promote='joint') the slow
    climber climbs and the fast starter does not; ranked by the rung's own number (ASHA)
    the opposite."""
    keys, final, features, by_rung = _crossing_curves()
    # fast: small x0, ends at 2*0.05+0.9 = 1.0; slow: large x0, ends at 2*0.9+0.5 = 2.3
    for key, x in (('fast', [0.05, 0.9]), ('slow', [0.9, 0.5])):
        features[key] = x
        by_rung[0][key] = 2 * x[0] + x[1] - 3.0 * (0.2 + x[0])
    assert by_rung[0]['fast'] > by_rung[0]['slow']  # the first rung reverses them
    ids = {key: i for i, key in enumerate(sorted(features))}
    res = _rung_rows(by_rung, ids)
    done = {(ids[key], k) for k in (1, 2) for key in by_rung[k]}
    values = joint_values(features, by_rung, EPOCHS)  # what the optimiser's store offers
    scores = [{ids[key]: v for key, v in values.items()}]
    assert values['slow'] > values['fast']
    joint = Rungs(EPOCHS, 3, 6, model='joint', promote='joint').promotable(
        res, done, [2.0], scores=scores
    )
    asha = Rungs(EPOCHS, 3, 6, model='joint', promote='rung').promotable(res, done, [2.0])
    assert (ids['slow'], 1) in joint and (ids['fast'], 1) not in joint
    assert (ids['fast'], 1) in asha and (ids['slow'], 1) not in asha
    # the promoted set is the rung's top third by the joint value, whatever the rung says
    rung0 = sorted(by_rung[0], key=lambda key: -values[key])[: len(by_rung[0]) // 3]
    assert {t for t, k in joint if k == 1} == {ids[key] for key in rung0} - {t for t, _ in done}


def test_promote_joint_ranks_by_the_rung_until_the_model_covers_every_candidate():
    keys, _, features, by_rung = _crossing_curves(n=30)
    ids = {key: i for i, key in enumerate(keys)}
    res = _rung_rows(by_rung, ids)
    r = Rungs(EPOCHS, 3, 6, model='joint', promote='joint')
    asha = Rungs(EPOCHS, 3, 6, model='joint', promote='rung').promotable(res, set(), [2.0])
    assert r.promotable(res, set(), [2.0]) == asha  # no scores: the model has not started
    values = joint_values(features, by_rung, EPOCHS)
    partial = {ids[key]: v for key, v in values.items() if key != keys[0]}
    assert r.promotable(res, set(), [2.0], scores=[partial]) == asha  # one candidate missing
    full = {ids[key]: v for key, v in values.items()}
    assert r.promotable(res, set(), [2.0], scores=[full]) != asha


def test_a_search_promoting_by_the_joint_model_ranks_with_its_stores_fit(
    sim_cfg, tmp_path, monkeypatch
):
    """The controller ranks each rung by the values the budget's optimiser store fitted
    (``JournalTrialStore.top_values``): every candidate with a rung result, the measured
    value for those at the top rung; the search promotes and reaches the top rung."""
    calls = []
    promotable = Rungs.promotable

    def recording(self, results, promoted, budgets, always=frozenset(), stretch=False, scores=None):
        calls.append((list(results), scores))
        return promotable(self, results, promoted, budgets, always, stretch, scores)

    monkeypatch.setattr(Rungs, 'promotable', recording)
    cfg = _fid_cfg(copy.deepcopy(sim_cfg), min_observations=2, model='joint', promote='joint')
    cfg['nas'].update(num_trials=16, ask_batch=1)
    summary = _run(cfg, tmp_path, rung_trainer(), workers=1)
    fitted = [(res, s) for res, s in calls if s and s[0]]
    assert fitted, 'the joint model never ranked a rung'
    res, scores = fitted[-1]
    assert len(scores) == len(summary['budgets_ms'])
    with_result = {r['trial_id'] for r in res if r['metric'] is not None}
    assert set(scores[0]) <= with_result and len(scores[0]) >= len(with_result) - 2
    for r in res:
        if r['rung'] == 2 and r['trial_id'] in scores[0]:
            assert scores[0][r['trial_id']] == r['metric']  # the top rung as measured
    j = SearchJournal.open(str(tmp_path))
    assert any(r['rung'] == 2 for r in j.rung_results())


def test_the_store_offers_no_top_values_without_the_joint_model(sim_cfg, tmp_path):
    from gpunet_mm.search.trial_store import JournalTrialStore

    cfg = _fid_cfg(copy.deepcopy(sim_cfg), min_observations=2, model='rung')
    cfg['nas'].update(num_trials=8)
    _run(cfg, tmp_path, rung_trainer())
    j = SearchJournal.open(str(tmp_path))
    store = JournalTrialStore(j, 0, None, lambda p: None, Rungs(EPOCHS, 3, 2, model='rung'))
    assert store.top_values() == {}


@pytest.mark.parametrize(
    'fid, match',
    [
        (
            dict(promote='ucb'),
            r"nas.fidelity.promote: got 'ucb'; allowed: 'rung', 'predicted' "
            r"or 'joint'",
        ),
        (
            dict(promote='joint', model='rung'),
            r"nas.fidelity.promote: got 'joint' with "
            r"model='rung'.*needs model='joint'",
        ),
    ],
)
def test_a_bad_promote_is_refused_naming_the_value(fid, match):
    with pytest.raises(SearchConfigError, match=match):
        make_rungs(dict(min_epochs=1, **fid), 9)
