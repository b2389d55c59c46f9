"""Run optimisers on the same problem, budget and seeds; summarise and plot.

The logic behind ``tools/benchmark_search.py`` (kept here so tests and notebooks can call
it). Evaluation is synchronous per batch: ``ask(q)``, evaluate the ``q`` points, ``tell``
them; the best value only counts trials that are complete *and* feasible.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from . import METHODS, build_optimizer
from .functions import Problem, make_problem


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
) -> Dict[str, Any]:
    """Every method on the same problem, budget and seeds ``0..seeds-1``."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f'methods: got {unknown}; allowed: {", ".join(METHODS)}')
    problem = make_problem(func, dims, latency_budget=latency_budget)
    out: Dict[str, Any] = dict(
        config=dict(
            func=func,
            problem=problem.name,
            dims=problem.space.dims,
            budget=budget,
            batch=batch,
            seeds=seeds,
            methods=list(methods),
            minimize=problem.minimize,
            latency_budget=problem.budget,
        )
    )
    for m in methods:
        res: Dict[str, List[Any]] = dict(
            best=[],
            wall_s=[],
            ask_s_per_proposal=[],
            curves=[],
            proposed_over_budget=[],
            infeasible_measured=[],
        )
        for s in range(seeds):
            r = run_one(problem, m, budget, batch, seed=s, options=(options or {}).get(m))
            res['best'].append(r['best'])
            res['wall_s'].append(r['wall_s'])
            res['ask_s_per_proposal'].append(r['ask_s_per_proposal'])
            res['curves'].append(r['curve'])
            res['proposed_over_budget'].append(r['proposed_over_budget'])
            res['infeasible_measured'].append(r['infeasible_measured'])
            if progress:
                progress(
                    f'{m:>10s} seed {s}: best {r["best"]:.4g}  wall {r["wall_s"]:.1f}s  '
                    f'ask {1e3 * r["ask_s_per_proposal"]:.0f} ms/proposal'
                )
        out[m] = res
    return out


def summary_rows(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    for m, r in results.items():
        if m == 'config':
            continue
        b = np.asarray(r['best'], dtype=float)
        q1, med, q3 = np.nanpercentile(b, [25, 50, 75])
        rows.append(
            dict(
                method=m,
                median=med,
                q1=q1,
                q3=q3,
                wall_s=float(np.median(r['wall_s'])),
                ask_ms=1e3 * float(np.median(r['ask_s_per_proposal'])),
                over_budget=int(np.sum(r.get('proposed_over_budget', [0]))),
            )
        )
    return rows


def format_table(results: Dict[str, Any], markdown: bool = False) -> str:
    """Median and IQR of the best value over seeds, wall time, time per proposal."""
    cfg = results['config']
    head = ['method', 'median best', 'IQR (q1 .. q3)', 'wall s (median)', 'ms / proposal']
    if cfg.get('latency_budget') is not None:
        head.append('proposed over budget')
    lines = []
    for r in summary_rows(results):
        row = [
            r['method'],
            f'{r["median"]:.4g}',
            f'{r["q1"]:.4g} .. {r["q3"]:.4g}',
            f'{r["wall_s"]:.1f}',
            f'{r["ask_ms"]:.3g}',
        ]
        if cfg.get('latency_budget') is not None:
            row.append(str(r['over_budget']))
        lines.append(row)
    if markdown:
        out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        out += ['| ' + ' | '.join(r) + ' |' for r in lines]
        return '\n'.join(out)
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    return '\n'.join([fmt.format(*head)] + [fmt.format(*r) for r in lines])


def plot_curves(results: Dict[str, Any], path: str) -> None:
    """Best-so-far (median over seeds, IQR band) per method."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cfg = results['config']
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m, r in results.items():
        if m == 'config':
            continue
        C = np.asarray(r['curves'], dtype=float)
        x = np.arange(1, C.shape[1] + 1)
        med = np.nanmedian(C, axis=0)
        lo, hi = np.nanpercentile(C, [25, 75], axis=0)
        ax.plot(x, med, label=m)
        ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel('evaluations')
    ax.set_ylabel('best value so far' + (' (min)' if cfg['minimize'] else ' (max)'))
    ax.set_title(f'{cfg["problem"]}, batch {cfg["batch"]}, {cfg["seeds"]} seeds (median, IQR)')
    if cfg['minimize']:
        ax.set_yscale('symlog', linthresh=1.0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    'run_one',
    'time_proposals',
    'run_benchmark',
    'summary_rows',
    'format_table',
    'plot_curves',
]
