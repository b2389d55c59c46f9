"""What a search leaves for people and for the model hub.

``trials.csv`` (one row per architecture), ``pareto.png`` (latency against the metric, the
budgets and each budget's winner marked), with rungs ``rungs.png`` (each candidate's metric
through the rungs it reached, and the final retrain), ``best_<budget>ms.py`` (the winner of
each budget as a config ``tools/train.py`` trains as it is), ``results.json`` (the
machine-readable results that ``gpunet_mm.hub.import_search`` reads) and ``summary.json``.
All can be rewritten from the journal at any time; the text files are written atomically,
and a figure that fails only warns.
"""

from __future__ import annotations

import csv
import io
import json
import os.path as osp
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..atomic_write import atomic_write_text
from ..pareto import pareto_front as front
from .journal import PoolTrial

RESULTS_FORMAT = 1
CSV_FIELDS = (
    'trial_id',
    'arch_hash',
    'origin',
    'status',
    'attempts',
    'predicted_latency_ms',
    'latency_ms',
    'metric',
    'params',
    'backbone_gmacs',
    'train_wall_s',
    'checkpoint',
    'error',
)


def trial_row(t: PoolTrial) -> Dict[str, Any]:
    r = t.result or {}
    return dict(
        trial_id=t.id,
        arch_hash=t.arch_hash,
        origin=t.origin,
        status=t.status,
        attempts=t.attempts,
        predicted_latency_ms=None if t.predicted_ms is None else round(t.predicted_ms, 4),
        latency_ms=None if t.latency_ms is None else round(t.latency_ms, 4),
        metric=t.metric,
        params=r.get('params'),
        backbone_gmacs=r.get('backbone_gflops'),
        train_wall_s=None if r.get('train_wall_s') is None else round(r['train_wall_s'], 1),
        checkpoint=r.get('checkpoint'),
        error=(t.error or '')[-300:] or None,
    )


#: a simulated search's metric: a surrogate objective, never a trained model's score
SURROGATE_METRIC = 'surrogate_score'
#: the Pareto neighbour's tolerance: this fraction of the metric's scale (1 for mmdet's
#: fractional mAP, 100 for percentages), i.e. one percentage point
NEIGHBOUR_TOLERANCE = 0.01


def _brief(t: Any, winner: Any) -> Dict[str, Any]:
    return dict(
        trial_id=t.id,
        arch_hash=t.arch_hash,
        latency_ms=t.latency_ms,
        metric=t.metric,
        latency_ratio=round(t.latency_ms / winner.latency_ms, 4) if winner.latency_ms else None,
        metric_delta=round(t.metric - winner.metric, 6),
    )


def pareto_neighbours(
    trials: List[Any], winner: Any, budget: float, tolerance: float = NEIGHBOUR_TOLERANCE
) -> Dict[str, Any]:
    """What a user would weigh against a budget's winner (the most accurate trial within
    ``budget``), from the complete trials within the budget:

    * ``fastest_near_best``: the fastest trial whose metric is within one point (the
      ``tolerance`` times the metric's scale) of the winner's: often much faster for an
      accuracy difference below the proxy schedule's noise;
    * ``next_faster``: the Pareto-front trial just faster than the winner (the most accurate
      of the faster ones).

    Each is None when it would be the winner itself (or the same trial as the first); each
    carries its latency ratio to the winner and its metric difference.
    """
    done = [
        t
        for t in trials
        if getattr(t, 'status', 'complete') == 'complete'
        and t.metric is not None
        and t.latency_ms is not None
        and t.latency_ms <= budget
    ]
    scale = 100.0 if any(abs(t.metric) > 1.0 for t in done) else 1.0
    tol = tolerance * scale
    near = [t for t in done if t.metric >= winner.metric - tol]
    fastest = min(near, key=lambda t: (t.latency_ms, -t.metric, t.id), default=None)
    faster = _front([t for t in done if t.latency_ms < winner.latency_ms])
    nxt = faster[-1] if faster else None  # the most accurate of the faster ones
    out: Dict[str, Any] = dict(tolerance=tol, fastest_near_best=None, next_faster=None)
    if fastest is not None and fastest.id != winner.id:
        out['fastest_near_best'] = _brief(fastest, winner)
    if nxt is not None and (fastest is None or nxt.id != fastest.id):
        out['next_faster'] = _brief(nxt, winner)
    return out


def dataset_of(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """Which dataset the search's metric was measured on: the evaluation set's type and
    annotation file (or folder), and whether it is the built-in toy demo data."""
    from ..datasets import is_demo_data

    ds = dict(((cfg.get('val_dataloader') or {}).get('dataset')) or {})
    while isinstance(ds.get('dataset'), Mapping):  # wrappers (RepeatDataset, ...)
        ds = dict(ds['dataset'])
    root = ds.get('data_root') or ''
    where = ds.get('ann_file') or ds.get('data_prefix') or ''
    if isinstance(where, Mapping):
        where = next(iter(where.values()), '')
    path = osp.join(root, str(where)) if where else root
    toy = bool(root) and is_demo_data(root)
    name = f'{ds.get("type", "dataset")} {path}'.strip()
    if toy:
        name = f'gpunet_mm demo shapes (toy data): {path}'
    return dict(name=name, toy=toy)


def machine_of(trials: List[Any]) -> Dict[str, Any]:
    """The machine the latencies were measured on, from the measurements' environment:
    device key, CPU model, GPU model, backend and its version, threads and clock."""
    env: Dict[str, Any] = {}
    for t in trials:
        env = dict(((getattr(t, 'latency', None) or {}).get('env')) or {})
        if env:
            break
    if not env:
        return {}
    device = str(env.get('device') or '')
    backend = str(env.get('backend') or '')
    out = dict(
        device=device or None,
        cpu=env.get('cpu'),
        gpu=device.split(':')[1] if device.startswith('cuda:') else None,
        backend=backend or None,
        backend_version=env.get(backend.split('-')[0]) if backend else None,
        threads=env.get('threads'),
        clock=env.get('clock'),
    )
    return {k: v for k, v in out.items() if v is not None}


def rung_columns(
    rung_epochs: Optional[List[int]], rung_results: List[Dict[str, Any]]
) -> Tuple[List[str], Dict[int, Dict[str, Any]]]:
    """The columns a multi-fidelity search adds to trials.csv: ``epochs`` (the last rung a
    trial reached) and ``metric_<E>ep``, its metric after each rung of E epochs."""
    if not rung_epochs:
        return [], {}
    names = ['epochs'] + [f'metric_{e}ep' for e in rung_epochs]
    rows: Dict[int, Dict[str, Any]] = {}
    for r in rung_results:
        row = rows.setdefault(r['trial_id'], {})
        row[f'metric_{rung_epochs[r["rung"]]}ep'] = r['metric']
        row['epochs'] = max(row.get('epochs') or 0, r['epochs'] or 0)
    return names, rows


def trials_csv(
    trials: List[PoolTrial],
    rung_epochs: Optional[List[int]] = None,
    rung_results: Sequence[Dict[str, Any]] = (),
) -> str:
    extra, by_trial = rung_columns(rung_epochs, list(rung_results))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS) + extra)
    w.writeheader()
    for t in trials:
        w.writerow(dict(trial_row(t), **by_trial.get(t.id, {})))
    return buf.getvalue()


def _front(trials: List[Any]) -> List[Any]:
    return front(
        trials, latency=lambda t: t.latency_ms, score=lambda t: t.metric, tiebreak=lambda t: t.id
    )


def pareto_front(points: List[PoolTrial]) -> List[PoolTrial]:
    """Complete trials that no other beats in both latency and metric."""
    return _front(
        [
            t
            for t in points
            if t.status == 'complete' and t.metric is not None and t.latency_ms is not None
        ]
    )


#: how every figure marks a reference tier and a budget's winner (pareto.png, rungs.png)
REFERENCE_STYLE: Dict[str, Any] = dict(marker='D', color='tab:red')
WINNER_STYLE: Dict[str, Any] = dict(marker='*', s=180, color='gold', edgecolors='black', zorder=5)
#: rungs.png draws a final retrain as long as a rung this many times its epochs to the right
#: (log x: one fixed gap whatever the rung), so it does not sit on the rung's own markers
FINAL_COLUMN_SHIFT = 1.5


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: a search runs headless (and on workers)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str) -> None:
    """Lay out, write and close a report figure."""
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)


def plot_pareto(
    trials: List[PoolTrial],
    budgets: List[float],
    winners: Dict[float, Any],
    metric: str,
    path: str,
    title: str = '',
) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    done = [
        t
        for t in trials
        if t.status == 'complete' and t.metric is not None and t.latency_ms is not None
    ]
    infeas = [t for t in trials if t.status == 'infeasible' and t.latency_ms is not None]
    ref = [t for t in done if t.origin.startswith('reference')]
    warm = [t for t in done if t.origin.startswith('warm')]
    other = [t for t in done if t not in ref and t not in warm]
    if other:
        ax.scatter(
            [t.latency_ms for t in other],
            [t.metric for t in other],
            s=22,
            c=[t.id for t in other],
            cmap='viridis',
            label='trained candidates',
        )
    if warm:
        ax.scatter(
            [t.latency_ms for t in warm],
            [t.metric for t in warm],
            s=22,
            marker='s',
            facecolors='none',
            edgecolors='tab:blue',
            label='warm start',
        )
    for t in ref:
        ax.scatter([t.latency_ms], [t.metric], s=70, zorder=4, **REFERENCE_STYLE)
        ax.annotate(
            t.origin.split(':', 1)[1],
            (t.latency_ms, t.metric),
            textcoords='offset points',
            xytext=(6, -10),
            fontsize=8,
            color=REFERENCE_STYLE['color'],
        )
    front = pareto_front(done)
    if len(front) > 1:
        ax.step(
            [t.latency_ms for t in front],
            [t.metric for t in front],
            where='post',
            color='gray',
            lw=1,
            alpha=0.7,
            label='Pareto front',
        )
    ymin = min((t.metric for t in done), default=0.0)
    for t in infeas:
        ax.axvline(t.latency_ms, color='lightgray', lw=0.5, zorder=0)
    for b in budgets:
        ax.axvline(b, color='tab:orange', ls='--', lw=1)
        ax.text(  # x in data units, y in axes units: stays on the figure whatever ylim
            b,
            0.98,
            f' {b:g} ms',
            color='tab:orange',
            fontsize=8,
            va='top',
            transform=ax.get_xaxis_transform(),
        )
        w = winners.get(b)
        if w is not None:
            ax.scatter([w.latency_ms], [w.metric], **WINNER_STYLE)
    ax.set_xlabel('end-to-end latency (ms, measured on the target)')
    ax.set_ylabel(metric)
    ax.set_title(
        title or f'{len(done)} trained, {len(infeas)} over budget (not trained)', fontsize=9
    )
    if done:
        ymax = max(t.metric for t in done)
        pad = max(0.06 * max(ymax - ymin, abs(ymax)), 0.01)
        ax.set_ylim(ymin - pad, ymax + pad)
    ax.legend(fontsize=7, loc='lower right')
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def rungs_figure(
    rung_results: Sequence[Mapping[str, Any]],
    rung_epochs: Sequence[int],
    trials: Sequence[PoolTrial],
    budgets: Sequence[float],
    winners: Mapping[float, Optional[PoolTrial]],
    metric: str,
    final_runs: Sequence[Mapping[str, Any]] = (),
    title: str = '',
) -> Any:
    """The rungs of a multi-fidelity search: did the short rungs rank candidates as the longer
    ones did, who climbed, and how did the final retrain compare with the proxy? Returns the
    matplotlib Figure (``save_figure`` writes it); only journal facts go in.

    x is the epochs trained (log scale: rungs grow by ``eta``), y the metric. Each candidate
    is one line through the rungs it finished (gid ``'trial <id>'``): thin grey when it
    stopped at the first rung, coloured and thicker when it reached a later one (promoted,
    or started there with ``brackets``), red diamonds for the reference tiers (as in
    pareto.png). Each budget's winner is a gold star on its last rung
    (gid ``'winner <budget>'``). Each finished final retrain is a marker at the epochs it
    trained (gid ``'final <id>'``; the top rung's epochs when its result does not say), with
    a dashed connector from the candidate's proxy value (gid ``'final-link <id>'``). A final
    retrain as long as a rung (the demo retrains on its 8-epoch proxy schedule) is drawn in
    its own column just right of that rung, ``FINAL_COLUMN_SHIFT`` times its epochs: on the
    rung itself its marker and the winner's star would cover each other. The tick of a
    final column reads ``'<epochs>\n(final)'``.

    Every candidate that trained a rung is drawn; one whose measured latency is over every
    budget is faded, not left out: it spent a rung's compute and took a place in the rung's
    ranking, so the lines account for the occupancy in the title, while the eye goes to the
    candidates a user could pick.
    """
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    curves: Dict[int, List[Mapping[str, Any]]] = {}
    for r in rung_results:
        if r.get('metric') is not None:
            curves.setdefault(int(r['trial_id']), []).append(r)
    by_id = {t.id: t for t in trials}
    limit = max(budgets, default=float('inf'))
    climbed = sorted(tid for tid, c in curves.items() if max(r['rung'] for r in c) > 0)
    cmap = plt.get_cmap('viridis')
    colour: Dict[int, Any] = {}
    for i, tid in enumerate(climbed):  # stops short of viridis' yellow, the winners' gold
        colour[tid] = cmap(0.85 * i / max(1, len(climbed) - 1))
    names: Dict[int, str] = {}
    for tid, c in sorted(curves.items()):
        t = by_id.get(tid)
        lat = c[0].get('latency_ms')
        faded = lat is not None and lat > limit
        style: Dict[str, Any] = dict(color='0.6', lw=0.6, ms=2, marker='o', zorder=1)
        if t is not None and t.origin.startswith('reference'):
            names[tid] = t.origin.split(':', 1)[1]
            style = dict(color=REFERENCE_STYLE['color'], lw=2, ms=5, marker='D', zorder=3)
            colour[tid] = style['color']  # its final retrain's marker too
        elif tid in colour:
            style = dict(color=colour[tid], lw=1.6, ms=3.5, marker='o', zorder=2)
        colour.setdefault(tid, style['color'])
        ax.plot(
            [r['epochs'] for r in c],
            [r['metric'] for r in c],
            alpha=0.25 if faded else 0.9,
            gid=f'trial {tid}',
            **style,
        )
        if tid in names:
            ax.annotate(
                names[tid],
                (c[-1]['epochs'], c[-1]['metric']),
                textcoords='offset points',
                xytext=(6, -10),
                fontsize=8,
                color=REFERENCE_STYLE['color'],
            )
    won: Dict[int, List[str]] = {}  # one label per winner, naming each budget it won
    for b, w in winners.items():
        if w is None or w.id not in curves:
            continue
        last = curves[w.id][-1]
        ax.scatter([last['epochs']], [last['metric']], gid=f'winner {b:g}', **WINNER_STYLE)
        won.setdefault(w.id, []).append(f'{b:g}')
    for i, (tid, bs) in enumerate(won.items()):  # stacked: winners often sit close
        last = curves[tid][-1]
        ax.annotate(
            f'{", ".join(bs)} ms',
            (last['epochs'], last['metric']),
            textcoords='offset points',
            xytext=(8, 4 + 9 * i),
            fontsize=7,
        )
    final_x: Dict[float, float] = {}  # epochs of a final retrain -> where it is drawn
    for run in final_runs:
        if run.get('final_metric') is None:
            continue
        tid = int(run['trial_id'])
        epochs = run.get('final_epochs') or rung_epochs[-1]
        shift = FINAL_COLUMN_SHIFT if epochs in set(rung_epochs) else 1.0
        x = final_x.setdefault(epochs, epochs * shift)
        c = colour.get(tid, 'black')
        if run.get('proxy_metric') is not None and run.get('proxy_epochs'):
            ax.plot(
                [run['proxy_epochs'], x],
                [run['proxy_metric'], run['final_metric']],
                ls='--',
                lw=1,
                color=c,
                gid=f'final-link {tid}',
                zorder=2,
            )
        ax.scatter(
            [x],
            [run['final_metric']],
            s=70,
            marker='P',
            color=c,
            edgecolors='black',
            gid=f'final {tid}',
            zorder=6,
        )
    ax.set_xscale('log')
    labels = {float(e): f'{e:g}' for e in rung_epochs}
    for epochs, x in final_x.items():  # the tick names the column (no label on the markers)
        labels[float(x)] = f'{epochs:g}\n(final)'
    ticks = sorted(labels)
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[t] for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(min(ticks) / 1.3, max(ticks) * 1.3)
    ys = [r['metric'] for c in curves.values() for r in c]
    ys += [r['final_metric'] for r in final_runs if r.get('final_metric') is not None]
    if ys:
        lo, hi = min(ys), max(ys)
        pad = max(0.06 * max(hi - lo, abs(hi)), 0.01)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel('epochs trained (the rungs; log scale)')
    ax.set_ylabel(metric)
    counts = f'{len(curves)} candidates, {len(climbed)} promoted'
    if final_x:
        counts += f', {sum(1 for r in final_runs if r.get("final_metric") is not None)} retrained'
    ax.set_title(f'{title}\n{counts}' if title else counts, fontsize=9)
    handles = [
        Line2D([], [], color='0.6', lw=0.6, marker='o', ms=2, label='stopped at the first rung'),
        Line2D([], [], color=cmap(0.4), lw=1.6, marker='o', ms=3.5, label='promoted'),
        Line2D([], [], lw=2, ms=5, label='reference', **REFERENCE_STYLE),
        Line2D(
            [], [], ls='', marker='*', ms=12, color='gold', mec='black', label="budget's winner"
        ),
    ]
    if final_x:
        handles.append(
            Line2D([], [], ls='--', marker='P', color='black', mfc='white', label='final retrain')
        )
    ax.legend(handles=handles, fontsize=7, loc='lower right')
    ax.grid(alpha=0.3)
    return fig


def write_reports(
    ctrl: Any, cfg: Dict[str, Any], work_dir: str, nas: Dict[str, Any], simulate: bool
) -> Dict[str, str]:
    """Write every report file from the journal; returns their paths."""
    journal = ctrl.journal
    trials = journal.trials()
    files: Dict[str, str] = {}
    files['trials_csv'] = osp.join(work_dir, 'trials.csv')
    rungs = getattr(ctrl.opts, 'rungs', None)
    rung_results = journal.rung_results() if rungs is not None else []
    atomic_write_text(
        files['trials_csv'],
        trials_csv(trials, list(rungs.epochs) if rungs is not None else None, rung_results),
    )
    winners: Dict[float, Optional[PoolTrial]] = {b: ctrl.best(b) for b in ctrl.budgets}
    ref_rows = [t for t in trials if t.origin.startswith('reference') and t.status == 'complete']
    fin = ctrl.final_summary() if hasattr(ctrl, 'final_summary') else None
    final_of = {r['trial_id']: r['final_metric'] for r in (fin or {}).get('runs', [])}
    win_rows = []
    for b, w in winners.items():
        if w is None:
            continue
        # ``metric`` is what the search ranked by (the proxy schedule); ``final_metric`` the
        # full schedule's, where the final retrain ran
        row = dict(trial_row(w), budget_ms=b, arch=w.arch, metric_kind='proxy')
        row['neighbours'] = pareto_neighbours(ctrl.comparable(w), w, b)
        if final_of.get(w.id) is not None:
            row['final_metric'] = final_of[w.id]
        if not simulate:
            from .trainer import winner_config_text

            path = osp.join(work_dir, f'best_{b:g}ms.py')
            header = [
                f'Found by tools/nas_search.py (work_dir {osp.abspath(work_dir)}, trial {w.id},',
                f'journal {journal.journal_hash[:16]}): {nas["metric"]} {w.metric:.4f} after the',
                f'search schedule, end-to-end latency {w.latency_ms:.3f} ms (budget {b:g} ms).',
                'Train it: python tools/train.py ' + path,
            ]
            if final_of.get(w.id) is not None:
                header.insert(
                    3,
                    f'Final retrain on the full schedule: {nas["metric"]} {final_of[w.id]:.4f} '
                    '(the number above is the proxy).',
                )
            atomic_write_text(path, winner_config_text(cfg, w.arch, header))
            row['config'] = osp.abspath(path)
            files[f'best_{b:g}ms'] = path
        win_rows.append(row)
    target = dict(cfg.get('latency_target') or {})
    target.pop('resources', None)
    dataset = dataset_of(cfg)
    results = dict(
        format=RESULTS_FORMAT,
        search=dict(
            work_dir=osp.abspath(work_dir),
            journal_hash=journal.journal_hash,
            config=cfg.get('filename'),
            mode='simulate' if simulate else 'train',
            target=dict(target, detector=(cfg.get('model') or {}).get('type')),
            task='classification' if cfg.get('default_scope') == 'mmpretrain' else 'detection',
            metric_name=nas['metric'],
            dataset=dataset['name'],
            toy_data=dataset['toy'],
            machine=machine_of(trials),
            budgets_ms=list(ctrl.budgets),
            written=time.strftime('%Y-%m-%dT%H:%M:%S'),
        ),
        winners=win_rows,
        references=[
            dict(trial_row(t), name=t.origin.split(':', 1)[1], arch=t.arch) for t in ref_rows
        ],
        trials=[dict(trial_row(t), arch=t.arch) for t in trials if t.status == 'complete'],
    )
    if fin is not None:
        results['final'] = fin
    files['results'] = osp.join(work_dir, 'results.json')
    atomic_write_text(files['results'], json.dumps(results, indent=1, default=str))
    figures: Dict[str, Callable[[str], None]] = dict(
        pareto=lambda path: plot_pareto(trials, ctrl.budgets, winners, nas['metric'], path)
    )
    if rungs is not None:
        figures['rungs'] = lambda path: save_figure(
            rungs_figure(
                rung_results,
                list(rungs.epochs),
                trials,
                ctrl.budgets,
                winners,
                nas['metric'],
                (fin or {}).get('runs', []),
                title=ctrl.fidelity_status(),
            ),
            path,
        )
    for name, draw in figures.items():
        path = osp.join(work_dir, f'{name}.png')
        try:
            draw(path)
            files[name] = path
        except Exception as e:  # a figure is not worth the results, which are written above
            warnings.warn(f'{name} plot not written: {type(e).__name__}: {e}', stacklevel=1)
    return files


def summary_table(summary: Mapping[str, Any], work_dir: str) -> str:
    """What the search prints when it ends: one line per budget and per reference, the
    trial counts; the whole summary is in ``WORK_DIR/summary.json``."""
    metric = str(summary.get('metric'))
    head = ('budget', 'winner', 'trial', 'origin', 'latency', metric)
    rows = []
    for b, w in (summary.get('best_per_budget') or {}).items():
        if w is None:
            rows.append((f'{b} ms', '-', '-', '-', '-', 'nothing trained within budget'))
            continue
        rows.append(
            (
                f'{b} ms',
                str(w['arch_hash']),
                str(w['trial_id']),
                str(w.get('origin', '')),
                f'{w["latency_ms"]:.3f} ms',
                f'{w["metric"]:.4f}',
            )
        )
    for name, r in (summary.get('references') or {}).items():
        lat = '-' if r.get('latency_ms') is None else f'{r["latency_ms"]:.3f} ms'
        m = '-' if r.get('metric') is None else f'{r["metric"]:.4f}'
        rows.append(('reference', name, str(r.get('trial_id', '-')), 'reference', lat, m))
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    lines = ['  '.join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines.append('-' * len(lines[0]))
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    counts = ', '.join(f'{k} {v}' for k, v in (summary.get('trials_by_status') or {}).items())
    lines.append(f'trials: {counts or "none"}')
    dataset = summary.get('dataset') or {}
    if dataset.get('name'):
        toy = ' (TOY DATA: says nothing about real images)' if dataset.get('toy') else ''
        lines.append(f'{metric} measured on: {dataset["name"]}{toy}')
    if summary.get('mode') == 'simulate':
        lines.append(f"{metric}: a simulated surrogate objective, not a trained model's score")
    lines.append(f'everything else: {osp.join(work_dir, "summary.json")}, results.json, trials.csv')
    return '\n'.join(lines)


# ---------------------------------------------------------------------- the last line
def all_failed(summary: Mapping[str, Any]) -> Optional[str]:
    """Why the search found nothing when no trial completed but some failed (None else):
    a search whose every training failed has no result, whatever its reports say."""
    counts = summary.get('trials_by_status') or {}
    if counts.get('complete', 0) or not counts.get('failed', 0):
        return None
    return (
        f'every trial failed ({counts["failed"]}): no result; the reasons are in the error '
        "column of trials.csv and in each trial's log under trials/"
    )


def final_line(summary: Mapping[str, Any]) -> str:
    """What was found per budget, and how it compares with the first reference tier (trained
    in the same run, so the same detector, schedule and latency target)."""
    refs = summary.get('references') or {}
    ref_name, ref = next(iter(refs.items()), (None, None))
    metric = summary['metric']

    def winner_text(b: Any, w: Mapping[str, Any]) -> str:
        text = (
            f'{b} ms: {w["arch_hash"]} at {w["latency_ms"]:.3f} ms, {metric} {w["metric"]:.4f} '
            f'(trial {w["trial_id"]}, {w["origin"]})'
        )
        if ref is not None and ref.get('arch_hash') == w['arch_hash']:
            text += f' = {ref_name} itself: no searched candidate was more accurate within budget'
        elif ref is not None and ref.get('metric') is not None and ref.get('latency_ms'):
            text += (
                f' = {w["metric"] - ref["metric"]:+.4f} {metric} at '
                f'{w["latency_ms"] / ref["latency_ms"]:.2f}x the latency of {ref_name}'
            )
        return text + neighbour_text((summary.get('neighbours') or {}).get(b), metric)

    line = 'FOUND ' + per_budget(
        summary['best_per_budget'], 'nothing trained within budget', winner_text
    )
    full = ((summary.get('fidelity') or {}).get('rung_epochs') or [None])[-1]
    for name, r in refs.items():
        m = '-' if r['metric'] is None else f'{r["metric"]:.4f}'
        lat = '-' if r['latency_ms'] is None else f'{r["latency_ms"]:.3f} ms'
        line += f' | {name} in the same run: {lat}, {metric} {m}'
        if full is not None and r['metric'] is not None and r.get('epochs') != full:
            # with rungs a reference that stopped short is no yardstick for the winners
            line += f' after {r.get("epochs")} of {full} epochs (not the full proxy schedule)'
    return line + final_part(summary)


def final_part(summary: Mapping[str, Any]) -> str:
    """The final retrain's winner per budget, its final and proxy numbers ('' without one)."""
    fin = summary.get('final')
    if not fin:
        return ''
    metric = summary['metric']

    def winner_text(b: Any, w: Mapping[str, Any]) -> str:
        proxy = f'{w["proxy_metric"]:.4f}' if w['proxy_metric'] is not None else '-'
        ep = f' after {w["proxy_epochs"]} epochs' if w.get('proxy_epochs') else ''
        return (
            f'{b} ms: {w["arch_hash"]} (trial {w["trial_id"]}) {metric} {w["final_metric"]:.4f} '
            f'on the full schedule (proxy {proxy}{ep})'
        )

    return ' | FINAL ' + per_budget(fin['winners'], 'no final retrain finished', winner_text)


def per_budget(
    winners: Mapping[Any, Optional[Mapping[str, Any]]],
    none_text: str,
    winner_text: Callable[[Any, Mapping[str, Any]], str],
) -> str:
    """One text per budget, in the budgets' order, joined by ``'; '``: ``winner_text(b, w)``
    for a budget with a winner, ``'<b> ms: <none_text>'`` for one without (the final line's
    FOUND and FINAL parts both read this way)."""
    return '; '.join(
        f'{b} ms: {none_text}' if w is None else winner_text(b, w) for b, w in winners.items()
    )


def neighbour_text(nb: Optional[Mapping[str, Any]], metric: str) -> str:
    """The winner's Pareto neighbours, as a user would weigh them against it."""
    if not nb:
        return ''
    out = []
    for key, what in (
        ('fastest_near_best', f'fastest within {nb["tolerance"]:g} {metric}'),
        ('next_faster', 'next faster'),
    ):
        n = nb.get(key)
        if n:
            out.append(
                f'{what}: {n["arch_hash"]} (trial {n["trial_id"]}) at {n["latency_ratio"]:.2f}x '
                f'the latency, {n["metric_delta"]:+.4f} {metric}'
            )
    return f' [{"; ".join(out)}]' if out else ''
