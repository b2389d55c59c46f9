"""Run optimisers on the same problem, budget and seeds; summarise and plot.

The logic behind ``tools/benchmark_search.py`` (kept here so tests and notebooks can call
it). Evaluation is synchronous per batch: ``ask(q)``, evaluate the ``q`` points, ``tell``
them; the best value only counts trials that are complete *and* feasible.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import METHODS, build_optimizer
from .objectives import Problem, make_problem


def make_optimizer(
    problem: Problem, method: str, seed: int = 0, options: Optional[Dict[str, Any]] = None
):
    """``method`` (a short name or class name) set up for ``problem``'s sense and constraint."""
    return build_optimizer(
        dict(type=method, **(options or {})),
        problem.space,
        seed=seed,
        minimize=problem.minimize,
        constraint_fn=problem.constraint_fn,
        budget=problem.budget,
    )


def run_one(
    problem: Problem,
    method: str,
    budget: int,
    batch: int = 1,
    seed: int = 0,
    options: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One search; returns best value, best-so-far curve, wall time and time in ``ask``."""
    if budget < 1 or batch < 1:
        raise ValueError(f'budget={budget}, batch={batch}; allowed: integers >= 1')
    opt = make_optimizer(problem, method, seed, options)
    sign = 1.0 if problem.minimize else -1.0
    best = math.inf
    curve: List[float] = []
    ask_s, over_budget = 0.0, 0
    t0 = time.perf_counter()
    while len(curve) < budget:
        t1 = time.perf_counter()
        trials = opt.ask(min(batch, budget - len(curve)))
        ask_s += time.perf_counter() - t1
        for t in trials:
            if problem.budget is not None and t.predicted_cost > problem.budget:
                over_budget += 1  # never expected: the contract forbids it
            value, cost = problem.evaluate(t.obj)
            t = opt.tell(t, value, cost=cost)
            if t.status == 'complete':
                best = min(best, sign * t.value)
            curve.append(sign * best if math.isfinite(best) else float('nan'))
    wall = time.perf_counter() - t0
    return dict(
        best=curve[-1],
        curve=curve,
        wall_s=wall,
        ask_s_per_proposal=ask_s / budget,
        proposed_over_budget=over_budget,
        infeasible_measured=sum(t.status == 'infeasible' for t in opt.trials),
    )


def time_proposals(
    problem: Problem,
    method: str = 'lamcts',
    n_obs: int = 1000,
    batch: int = 1,
    repeats: int = 5,
    seed: int = 0,
    options: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Seconds per ``ask(batch)`` once ``n_obs`` observations have been told.

    The observations are random feasible points told with their true values (so the tree
    and the GP see a realistic, rugged landscape). Each repeat asks and tells, so the
    timings are of consecutive real proposals, not of one cached model.
    """
    if n_obs < 1 or repeats < 1 or batch < 1:
        raise ValueError(f'n_obs={n_obs}, repeats={repeats}, batch={batch}; allowed: >= 1')
    if METHODS.get(method, method) == 'LaMCTSBO':
        # time the model, not the first design: no priors to try first after the history
        options = dict(dict(priors='none', n_prior_trials=0), **(options or {}))
    opt = make_optimizer(problem, method, seed, options)
    # the history: random feasible points, recorded with add_trial (a warm start, so the
    # optimiser goes straight to its model; filling it through ask would take minutes)
    t_fill = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    for _ in range(20):  # duplicates are skipped, so top up until n_obs distinct points
        need = n_obs - len(opt.trials)
        if need <= 0:
            break
        for x in problem.space.sample_feasible(need, rng, opt._cost_fn(), problem.budget):
            obj = problem.space.decode(x)
            if len(opt.trials) < n_obs and opt.is_new(x):
                value, cost = problem.evaluate(obj)
                opt.add_trial(obj, value, cost=cost)
    fill_s = time.perf_counter() - t_fill
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trials = opt.ask(batch)
        times.append(time.perf_counter() - t0)
        for t in trials:
            value, cost = problem.evaluate(t.obj)
            opt.tell(t, value, cost=cost)
    return dict(
        method=method,
        n_obs=len(opt.trials) - repeats * batch,
        batch=batch,
        seconds=times,
        median_s=float(np.median(times)),
        max_s=float(np.max(times)),
        fill_s=fill_s,
    )


def method_available(method: str) -> Optional[str]:
    """``None`` if ``method`` can run here, else why not (its optional dependency)."""
    kind = METHODS.get(method, method)
    needs = {
        'TPESearch': ('optuna',),
        'OptunaGPSearch': ('optuna', 'torch'),
        'NevergradSearch': ('nevergrad',),
    }.get(kind, ())
    for mod in needs:
        try:
            __import__(mod)
        except ImportError as e:
            return f'{method} skipped: needs {mod} ({e}); pip install {mod}'
    return None


def _job(args: Tuple[Any, ...]) -> Tuple[str, int, Dict[str, Any]]:
    func, dims, latency_budget, m, budget, batch, seed, opt = args
    problem = make_problem(func, dims, latency_budget=latency_budget)
    return m, seed, run_one(problem, m, budget, batch, seed=seed, options=opt)


def run_benchmark(
    func: str,
    dims: int,
    budget: int,
    batch: int = 1,
    seeds: int = 5,
    methods: Sequence[str] = ('lamcts', 'random', 'evolution', 'tpe'),
    options: Optional[Dict[str, Dict[str, Any]]] = None,
    latency_budget: float = 1.0,
    progress: Optional[Callable[[str], None]] = None,
    report_at: Optional[Sequence[int]] = None,
    workers: int = 1,
    method_budgets: Optional[Dict[str, int]] = None,
) -> Dict[str, Any]:
    """Every method on the same problem, budget and seeds ``0..seeds-1``.

    ``report_at``: the trial counts at which best-so-far is summarised (one run gives them
    all: anytime performance). ``workers``: runs in parallel processes (each run stays
    single-threaded and seeded, so results do not depend on it). Methods whose optional
    dependency is missing are skipped with a message (``results['skipped']``).
    ``method_budgets`` caps the trials of slow methods (their curves are shorter, and
    budgets beyond them are reported as not run).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f'methods: got {unknown}; allowed: {", ".join(METHODS)}')
    report_at = sorted({int(b) for b in (report_at or [budget])})
    if report_at[0] < 1 or report_at[-1] > budget:
        raise ValueError(f'report_at: got {report_at}; allowed: 1 .. budget ({budget})')
    problem = make_problem(func, dims, latency_budget=latency_budget)
    skipped = {}
    for m in methods:
        why = method_available(m)
        if why:
            skipped[m] = why
            if progress:
                progress(why)
    run_methods = [m for m in methods if m not in skipped]
    out: Dict[str, Any] = dict(
        config=dict(
            func=func,
            problem=problem.name,
            dims=problem.space.dims,
            budget=budget,
            batch=batch,
            seeds=seeds,
            methods=run_methods,
            minimize=problem.minimize,
            latency_budget=problem.budget,
            report_at=report_at,
            method_budgets=dict(method_budgets or {}),
        )
    )
    if skipped:
        out['skipped'] = skipped
    jobs = [
        (
            func,
            dims,
            latency_budget,
            m,
            min(budget, (method_budgets or {}).get(m, budget)),
            batch,
            s,
            (options or {}).get(m),
        )
        for m in run_methods
        for s in range(seeds)
    ]
    runs: Dict[Tuple[str, int], Dict[str, Any]] = {}

    def done(m: str, s: int, r: Dict[str, Any]) -> None:
        runs[(m, s)] = r
        if progress:
            progress(
                f'{m:>10s} seed {s}: best {r["best"]:.4g}  wall {r["wall_s"]:.1f}s  '
                f'ask {1e3 * r["ask_s_per_proposal"]:.0f} ms/proposal'
            )

    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        # slowest first, so the pool does not end waiting on one long run
        jobs.sort(key=lambda j: (j[3] not in ('gp', 'lamcts', 'ngopt'), j[3], j[6]))
        with mp.get_context('spawn').Pool(workers) as pool:
            for m, s, r in pool.imap_unordered(_job, jobs):
                done(m, s, r)
    else:
        for j in jobs:
            done(*_job(j))
    for m in run_methods:
        res: Dict[str, Any] = dict(
            best=[],
            wall_s=[],
            ask_s_per_proposal=[],
            curves=[],
            proposed_over_budget=[],
            infeasible_measured=[],
        )
        for s in range(seeds):
            r = runs[(m, s)]
            for k in res:
                res[k].append(r['curve'] if k == 'curves' else r[k])
        res['at'] = anytime_summary(res['curves'], report_at)
        out[m] = res
    return out


def anytime_summary(curves: Sequence[Sequence[float]], report_at: Sequence[int]) -> Dict[str, Any]:
    """Median, quartiles and per-seed values of best-so-far after each of ``report_at``."""
    at: Dict[str, Any] = {}
    for b in report_at:
        vals = [float(c[b - 1]) if len(c) >= b else float('nan') for c in curves]
        arr = np.asarray(vals, dtype=float)
        if np.all(np.isnan(arr)):
            at[str(b)] = dict(median=None, q1=None, q3=None, values=vals)
            continue
        q1, med, q3 = np.nanpercentile(arr, [25, 50, 75])
        at[str(b)] = dict(median=float(med), q1=float(q1), q3=float(q3), values=vals)
    return at


def merge_results(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    """``old`` with ``new``'s methods added or replaced (same problem, budget, batch, seeds).

    Lets a changed optimiser be re-run without re-running unchanged peers (every run is
    seeded, so a peer's results do not depend on when it ran).
    """
    keys = ('func', 'dims', 'budget', 'batch', 'seeds', 'latency_budget', 'report_at')
    a, b = old['config'], new['config']
    diff = [k for k in keys if json.dumps(a.get(k)) != json.dumps(b.get(k))]
    if diff:
        raise ValueError(
            f'merge: configs differ in {diff} ({[a.get(k) for k in diff]} vs '
            f'{[b.get(k) for k in diff]}); allowed: the same problem, budget, batch and seeds'
        )
    out = dict(old)
    cfg = dict(a)
    cfg['methods'] = list(a['methods']) + [m for m in b['methods'] if m not in a['methods']]
    cfg['method_budgets'] = {**a.get('method_budgets', {}), **b.get('method_budgets', {})}
    for what in ('labels', 'notes'):  # which method and options a renamed row ran
        merged = {**a.get(what, {}), **b.get(what, {})}
        if merged:
            cfg[what] = merged
    out['config'] = cfg
    for m in b['methods']:
        out[m] = new[m]
    skipped = {**old.get('skipped', {}), **new.get('skipped', {})}
    for m in cfg['methods']:
        skipped.pop(m, None)
    if skipped:
        out['skipped'] = skipped
    else:
        out.pop('skipped', None)
    return out


def _methods(results: Dict[str, Any]) -> List[str]:
    return [m for m in results if m not in ('config', 'skipped')]


def summary_rows(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    for m in _methods(results):
        r = results[m]
        at = r.get('at') or anytime_summary(r['curves'], [len(r['curves'][0])])
        b = np.asarray(r['best'], dtype=float)
        q1, med, q3 = np.nanpercentile(b, [25, 50, 75])
        rows.append(
            dict(
                method=m,
                median=med,
                q1=q1,
                q3=q3,
                at=at,
                wall_s=float(np.median(r['wall_s'])),
                ask_ms=1e3 * float(np.median(r['ask_s_per_proposal'])),
                over_budget=int(np.sum(r.get('proposed_over_budget', [0]))),
                violations=float(np.median(r.get('infeasible_measured', [0]))),
            )
        )
    return rows


def format_table(results: Dict[str, Any], markdown: bool = False) -> str:
    """Per method: median best (IQR over seeds) after each reported budget, wall time per
    run, time per proposal (and, with a constraint, measured violations and proposals
    predicted over budget)."""
    cfg = results['config']
    rows = summary_rows(results)
    budgets = cfg.get('report_at') or [cfg['budget']]
    head = ['method'] + [f'best @{b} (median, IQR)' for b in budgets]
    head += ['wall s / run', 'ms / proposal']
    constrained = cfg.get('latency_budget') is not None
    if constrained:
        head += ['violations / run', 'proposed over budget']
    lines = []
    for r in rows:
        row = [r['method']]
        for b in budgets:
            a = r['at'].get(str(b))
            if a is None or a['median'] is None:
                row.append('not run')
            else:
                row.append(f'{a["median"]:.4g} ({a["q1"]:.4g} .. {a["q3"]:.4g})')
        row += [f'{r["wall_s"]:.1f}', f'{r["ask_ms"]:.3g}']
        if constrained:
            row += [f'{r["violations"]:g}', str(r['over_budget'])]
        lines.append(row)
    notes = [f'{why}' for why in results.get('skipped', {}).values()]
    if markdown:
        out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        out += ['| ' + ' | '.join(r) + ' |' for r in lines]
        return '\n'.join(out + [f'\n{n}' for n in notes])
    widths = [
        max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(head)
    ]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    return '\n'.join([fmt.format(*head)] + [fmt.format(*r) for r in lines] + notes)


def plot_curves(results: Dict[str, Any], path: str) -> None:
    """Best-so-far (median over seeds, IQR band) per method; the reported budgets marked."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cfg = results['config']
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for m in _methods(results):
        r = results[m]
        n = max(len(c) for c in r['curves'])
        C = np.full((len(r['curves']), n), np.nan)
        for i, c in enumerate(r['curves']):
            C[i, : len(c)] = c
        x = np.arange(1, n + 1)
        med = np.nanmedian(C, axis=0)
        lo, hi = np.nanpercentile(C, [25, 75], axis=0)
        ax.plot(x, med, label=m, lw=2.0 if m == 'lamcts' else 1.2)
        ax.fill_between(x, lo, hi, alpha=0.15)
    for b in cfg.get('report_at') or []:
        ax.axvline(b, color='grey', lw=0.6, ls=':')
    ax.set_xlabel('evaluations (trained candidates)')
    ax.set_ylabel('best value so far' + (' (min)' if cfg['minimize'] else ' (max)'))
    ax.set_title(f'{cfg["problem"]}, batch {cfg["batch"]}, {cfg["seeds"]} seeds (median, IQR)')
    if cfg['minimize']:
        ax.set_yscale('symlog', linthresh=1.0)
    else:  # the interesting part: from the median of the first design upwards
        vals = np.concatenate(
            [np.asarray(c, float) for m in _methods(results) for c in results[m]['curves']]
        )
        fin = vals[np.isfinite(vals)]
        if fin.size:
            low, top = float(np.percentile(fin, 10)), float(np.max(fin))
            ax.set_ylim(low, top + 0.05 * max(top - low, 1e-9))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    'run_one',
    'time_proposals',
    'run_benchmark',
    'anytime_summary',
    'merge_results',
    'method_available',
    'summary_rows',
    'format_table',
    'plot_curves',
]
