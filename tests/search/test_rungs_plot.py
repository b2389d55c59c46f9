"""rungs.png: what a multi-fidelity search shows of its rungs, drawn from the journal."""

import json

import matplotlib.colors as mcolors
import pytest

from gpunet_mm.nas.objectives import surrogate_curve
from gpunet_mm.search import SearchJournal, report
from gpunet_mm.search.journal import PoolTrial

from .conftest import run_simulated, rung_trainer


def _fid_cfg(sim_cfg, final=True):
    sim_cfg['nas'].update(
        num_trials=12, fidelity=dict(min_epochs=1, eta=3, max_epochs=9, min_observations=4)
    )
    if final:
        sim_cfg['nas']['final'] = dict(top_k=2, schedule=dict(train_cfg=dict(max_epochs=24)))
    return sim_cfg


def _trainer():
    rung = rung_trainer()

    def train(task):
        if task.payload.get('final'):  # another run of the architecture, on 24 epochs
            return {
                'metric': surrogate_curve(task.arch, 24, seed=1000 + task.trial_id),
                'epochs': 24,
            }
        return rung(task)

    return train


def _drawn(monkeypatch):
    """The figures ``write_reports`` draws for rungs.png (it closes them; their data stay)."""
    figs = []
    draw = report.rungs_figure

    def keep(*args, **kw):
        figs.append(draw(*args, **kw))
        return figs[-1]

    monkeypatch.setattr(report, 'rungs_figure', keep)
    return figs


def _by_gid(ax, prefix):
    return {
        int(a.get_gid().rsplit(' ', 1)[1]): a
        for a in ax.lines + ax.collections
        if (a.get_gid() or '').startswith(prefix)
    }


def test_rungs_png_draws_each_candidate_through_its_rungs_winners_and_final_retrain(
    sim_cfg, tmp_path, monkeypatch
):
    figs = _drawn(monkeypatch)
    s = run_simulated(
        _fid_cfg(sim_cfg), tmp_path, workers=2, trainer=_trainer(), write_reports=True
    )
    assert (tmp_path / 'rungs.png').stat().st_size > 10_000
    assert len(figs) == 1
    ax = figs[0].axes[0]
    j = SearchJournal.open(str(tmp_path))
    curves = {}
    for r in j.rung_results():
        curves.setdefault(r['trial_id'], []).append(r)
    # one line per candidate, through the epochs and metrics of the rungs it finished
    lines = _by_gid(ax, 'trial ')
    assert set(lines) == set(curves)
    for tid, c in curves.items():
        assert list(lines[tid].get_xdata()) == [r['epochs'] for r in c]
        assert list(lines[tid].get_ydata()) == pytest.approx([r['metric'] for r in c])
    occ = s['fidelity']['rung_occupancy']
    climbed = {tid for tid, c in curves.items() if len(c) > 1}
    assert len(climbed) == occ[1] > 0 and len(lines) == occ[0]  # all start at rung 0 (asha)
    # who stopped at the first rung is thin grey; who climbed is thicker and coloured
    ref = next(t.id for t in j.trials() if t.origin.startswith('reference'))
    assert mcolors.same_color(lines[ref].get_color(), report.REFERENCE_STYLE['color'])
    for tid, line in lines.items():
        grey = mcolors.same_color(line.get_color(), '0.6')
        assert grey == (tid not in climbed)
        assert (line.get_linewidth() < 1) == (tid not in climbed)
    assert ax.get_xscale() == 'log'
    # each budget's winner: a star on its last rung
    for b, w in s['best_per_budget'].items():
        star = next(c for c in ax.collections if c.get_gid() == f'winner {b}')
        last = curves[w['trial_id']][-1]
        assert list(star.get_offsets()[0]) == pytest.approx([last['epochs'], last['metric']])
        assert last['metric'] == pytest.approx(w['metric'])
    # the final retrain: a marker at its epochs, a dashed connector from the proxy value
    runs = s['final']['runs']
    assert runs and all(r['final_metric'] is not None for r in runs)
    markers, links = _by_gid(ax, 'final '), _by_gid(ax, 'final-link ')
    assert set(markers) == set(links) == {r['trial_id'] for r in runs}
    for r in runs:
        assert list(markers[r['trial_id']].get_offsets()[0]) == pytest.approx(
            [24, r['final_metric']]
        )
        link = links[r['trial_id']]
        assert list(link.get_xdata()) == [9, 24] and link.get_linestyle() == '--'
        assert list(link.get_ydata()) == pytest.approx([r['proxy_metric'], r['final_metric']])
    assert '24\n(final)' in [t.get_text() for t in ax.get_xticklabels()]
    # the title: rung occupancy and compute used, as the progress line says them
    title = ax.get_title()
    assert f'rungs 1/3/9 ep: {"/".join(str(n) for n in occ)}' in title
    assert f'compute {s["compute_epochs"]:g} epochs' in title


def test_no_final_retrain_no_final_markers_and_no_rungs_no_rungs_png(
    sim_cfg, tmp_path, monkeypatch
):
    import copy

    figs = _drawn(monkeypatch)
    plain = copy.deepcopy(sim_cfg)
    run_simulated(
        _fid_cfg(sim_cfg, final=False), tmp_path / 'rungs', trainer=_trainer(), write_reports=True
    )
    ax = figs[0].axes[0]
    assert _by_gid(ax, 'trial ') and not _by_gid(ax, 'final')
    assert not any('final' in t.get_text() for t in ax.get_xticklabels())
    # without rungs there is nothing to show: pareto.png only
    run_simulated(plain, tmp_path / 'plain', write_reports=True)
    assert (tmp_path / 'plain' / 'pareto.png').exists()
    assert not (tmp_path / 'plain' / 'rungs.png').exists()
    assert len(figs) == 1


def test_a_failing_rungs_figure_warns_and_loses_no_result(sim_cfg, tmp_path, monkeypatch):
    def boom(*args, **kw):
        raise RuntimeError('no figure today')

    monkeypatch.setattr(report, 'rungs_figure', boom)
    with pytest.warns(UserWarning, match='rungs plot not written: RuntimeError: no figure today'):
        run_simulated(_fid_cfg(sim_cfg), tmp_path, trainer=_trainer(), write_reports=True)
    assert not (tmp_path / 'rungs.png').exists()
    assert (tmp_path / 'pareto.png').stat().st_size > 0  # the other figure is still drawn
    res = json.loads((tmp_path / 'results.json').read_text())
    assert res['winners'] and res['final']['runs']
    assert 'metric_9ep' in (tmp_path / 'trials.csv').read_text().splitlines()[0]


def test_a_candidate_over_every_budget_is_faded_and_a_final_as_long_as_a_rung_has_its_own_column():
    trials = [
        PoolTrial(1, 'a', {}, 'optimizer:0', 0, 'complete', 1, None, 0.9, None, 0.5),
        PoolTrial(2, 'b', {}, 'optimizer:0', 0, 'complete', 1, None, 3.0, None, 0.6),
    ]
    res = [
        dict(trial_id=1, rung=0, epochs=1, metric=0.3, latency_ms=0.9),
        dict(trial_id=1, rung=1, epochs=3, metric=0.5, latency_ms=0.9),
        dict(trial_id=2, rung=0, epochs=1, metric=0.6, latency_ms=3.0),
    ]
    final = [dict(trial_id=1, proxy_metric=0.5, proxy_epochs=3, final_metric=0.7)]
    fig = report.rungs_figure(res, [1, 3], trials, [1.0, 2.0], {1.0: trials[0]}, 'm', final)
    ax = fig.axes[0]
    lines = _by_gid(ax, 'trial ')
    assert lines[2].get_alpha() < lines[1].get_alpha()  # 3.0 ms: over both budgets
    # no final_epochs: the top rung's 3 epochs, drawn right of that rung (not on its
    # markers), connected to the proxy value at 3 epochs, with a tick saying so
    shifted = 3 * report.FINAL_COLUMN_SHIFT
    assert shifted > 3 * 1.2
    assert list(_by_gid(ax, 'final ')[1].get_offsets()[0]) == pytest.approx([shifted, 0.7])
    link = _by_gid(ax, 'final-link ')[1]
    assert list(link.get_xdata()) == pytest.approx([3, shifted])
    ticks = [(round(x, 6), t.get_text()) for x, t in zip(ax.get_xticks(), ax.get_xticklabels())]
    assert ticks == [(1, '1'), (3, '3'), (round(shifted, 6), '3\n(final)')]
    assert ax.get_xlim()[1] > shifted
    assert [c.get_gid() for c in ax.collections if (c.get_gid() or '').startswith('winner')] == [
        'winner 1'
    ]
    report._pyplot().close(fig)
