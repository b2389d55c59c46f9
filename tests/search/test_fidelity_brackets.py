"""The starting rung of a new candidate (``nas.fidelity.brackets``): Hyperband's shares,
the adaptive weighting by each rung's rank consistency with the top rung, and a search
whose candidates start at later rungs (from scratch, journalled before dispatch)."""

import copy

import pytest

from gpunet_mm.search import SearchJournal
from gpunet_mm.search.fidelity import Rungs, make_rungs, rank_consistency
from gpunet_mm.search.trainer import SearchConfigError

from .conftest import rung_trainer
from .test_fidelity import _fid_cfg, _run


def _table(rung0, rung1, top, latency=1.0):
    """Rung results of candidates 0..n-1: ``rungK[i]`` is candidate i's metric at rung K
    (None: it has no result there)."""
    out = []
    for k, col in enumerate((rung0, rung1, top)):
        for tid, v in enumerate(col):
            if v is not None:
                out.append(dict(trial_id=tid, rung=k, metric=v, latency_ms=latency))
    return out


TOP = [float(v) for v in range(8)]
#: rung 0 orders the candidates exactly as the top rung does; rung 1 in reverse
FAITHFUL_AND_INVERTED = _table(rung0=[v / 10 for v in TOP], rung1=[-v for v in TOP], top=TOP)


def test_hyperband_shares_follow_the_brackets():
    # rungs 1/3/9, eta 3: brackets start 9, 5 and 3 candidates at 1, 3 and 9 epochs
    r = Rungs((1, 3, 9), 3, 4, brackets='hyperband')
    assert r.hyperband_shares() == pytest.approx([9 / 17, 5 / 17, 3 / 17])
    started = []
    for _ in range(17):
        started.append(r.start_rung([], started))
    assert [started.count(k) for k in range(3)] == [9, 5, 3]
    # spread, not in blocks: each of the first 4 starts differs from its predecessor
    assert all(a != b for a, b in zip(started[:4], started[1:4]))


def test_asha_starts_every_candidate_at_the_first_rung():
    r = Rungs((1, 3, 9), 3, 4)
    assert r.brackets == 'asha'
    assert r.start_weights(FAITHFUL_AND_INVERTED) == [1.0, 0.0, 0.0]
    assert {r.start_rung(FAITHFUL_AND_INVERTED, [0] * n) for n in range(10)} == {0}


def test_rank_consistency_on_known_tables():
    assert rank_consistency(FAITHFUL_AND_INVERTED, 0, 2) == (pytest.approx(1.0), 8)
    assert rank_consistency(FAITHFUL_AND_INVERTED, 1, 2) == (pytest.approx(-1.0), 8)
    # only the candidates that finished both rungs count
    partial = _table(rung0=[1.0, 2.0, 3.0, 0.0], rung1=[], top=[1.0, 2.0, None, None])
    assert rank_consistency(partial, 0, 2) == (pytest.approx(1.0), 2)
    # a budget keeps only the candidates within it
    assert rank_consistency(FAITHFUL_AND_INVERTED, 0, 2, budget=0.5) == (None, 0)


def test_adaptive_brackets_stop_entering_at_a_rung_that_inverts_the_top():
    r = Rungs((1, 3, 9), 3, 4, brackets='adaptive')
    w = r.start_weights(FAITHFUL_AND_INVERTED)
    # rung 1 ranks the top backwards: no new candidate starts there; rungs 0 and 2 keep
    # Hyperband's proportions (9 : 3)
    assert w[1] == 0.0
    assert w[0] / w[2] == pytest.approx(9 / 3)
    started = []
    for _ in range(24):
        started.append(r.start_rung(FAITHFUL_AND_INVERTED, started))
    assert started.count(1) == 0 and started.count(0) == 18 and started.count(2) == 6
    # the mirror image: rung 1 faithful, rung 0 inverted -> nothing starts at rung 0
    mirror = _table(rung0=[-v for v in TOP], rung1=[v / 10 for v in TOP], top=TOP)
    started = []
    for _ in range(8):
        started.append(r.start_rung(mirror, started))
    assert 0 not in started and set(started) == {1, 2}


def test_adaptive_brackets_are_hyperband_until_a_rung_has_enough_pairs():
    r = Rungs((1, 3, 9), 3, 9, brackets='adaptive')  # 9 pairs needed, the table has 8
    assert r.start_weights(FAITHFUL_AND_INVERTED) == pytest.approx(r.hyperband_shares())
    # a budget whose candidates have no pairs at all: the same
    r4 = Rungs((1, 3, 9), 3, 4, brackets='adaptive')
    assert r4.start_weights(FAITHFUL_AND_INVERTED, budget=0.5) == pytest.approx(
        r4.hyperband_shares()
    )


def test_the_start_never_exceeds_what_the_compute_left_affords():
    r = Rungs((1, 3, 9), 3, 4, brackets='hyperband')
    started = []
    for _ in range(10):
        started.append(r.start_rung([], started, highest=1))
    assert max(started) == 1 and started.count(0) > started.count(1)
    assert r.start_rung([], [0, 0, 0], highest=0) == 0


@pytest.mark.parametrize(
    'value, match',
    [
        ('hb', r"nas.fidelity.brackets: got 'hb'; allowed: 'asha', 'hyperband' or 'adaptive'"),
        (2, r'nas.fidelity.brackets: got 2; allowed:'),
    ],
)
def test_bad_brackets_are_refused_before_anything_runs(value, match, sim_cfg, tmp_path):
    with pytest.raises(SearchConfigError, match=match):
        make_rungs(dict(min_epochs=1, brackets=value), 9)
    cfg = _fid_cfg(copy.deepcopy(sim_cfg), brackets=value)
    with pytest.raises(SearchConfigError, match=match):
        _run(cfg, tmp_path, rung_trainer())
    assert not (tmp_path / 'journal.sqlite').exists()


def test_a_search_with_brackets_starts_candidates_higher_up_from_scratch(sim_cfg, tmp_path):
    log = []
    cfg = _fid_cfg(copy.deepcopy(sim_cfg), brackets='hyperband')
    cfg['nas'].update(num_trials=14)
    s = _run(cfg, tmp_path, rung_trainer(log))
    j = SearchJournal.open(str(tmp_path))
    starts = j.start_rungs()
    assert starts and set(starts.values()) <= {1, 2}
    # a candidate that starts at rung k trains from scratch to rung k's epochs, once
    first = {}
    for tid, _a, start, end in log:
        first.setdefault(tid, (start, end))
    for tid, k in starts.items():
        assert first[tid] == (0, (1, 3, 9)[k])
        assert min(r['rung'] for r in j.rung_results(tid)) == k
    # every other candidate started at the first rung, references included
    ref = next(t for t in j.trials() if t.origin.startswith('reference'))
    assert ref.id not in starts and first[ref.id] == (0, 1)
    assert sum(s['fidelity']['start_rungs']) == len(first)
    assert s['fidelity']['start_rungs'][1:] == [
        sum(1 for k in starts.values() if k == i) for i in (1, 2)
    ]
    # compute counts what each attempt trained, from scratch for a start
    assert s['compute_epochs'] == sum(end - start for _t, _a, start, end in log)
    # promotions exclude the starts; the start is journalled before its dispatch
    assert s['fidelity']['promotions'] == len(j.promotions()) - len(starts)
    kinds = [(e['kind'], e['trial_id']) for e in j.events() if e['kind'] in ('promote', 'dispatch')]
    for tid in starts:
        assert kinds.index(('promote', tid)) < kinds.index(('dispatch', tid))
    assert len({(t, e) for t, _, _, e in log}) == len(log)  # nothing trained twice
