"""Benchmark the NAS optimisers on the same budget (logic: gpunet_mm.nas.benchmark).

Example (anytime: best-so-far after 30, 50, 100 and 200 trials from one run per seed)::

    python tools/benchmark_search.py --func gpunet-surrogate --budget 200 --batch 1 \
        --seeds 10 --report-at 30,50,100,200 --methods lamcts,random,evolution,tpe,gp \
        --workers 2 --json out.json --plot out.png --markdown

Methods: lamcts, random, evolution, tpe (optuna), gp (optuna GPSampler, needs torch),
ngopt (nevergrad). One whose optional dependency is missing is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

from gpunet_mm.nas.benchmark import (
    format_table,
    merge_results,
    plot_curves,
    run_benchmark,
    time_proposals,
)
from gpunet_mm.nas.objectives import PROBLEMS, make_problem


def _int_list(text: str) -> List[int]:
    try:
        out = [int(v) for v in text.split(',') if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f'got {text!r}; allowed: comma-separated integers') from e
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f'got {text!r}; allowed: integers >= 1')
    return out


def _budgets(text: str) -> Dict[str, int]:
    out = {}
    for item in text.split(','):
        if not item.strip():
            continue
        name, _, n = item.partition('=')
        if not n.strip().isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f'got {item!r}; allowed: METHOD=N with N >= 1')
        out[name.strip()] = int(n)
    return out


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--func', choices=PROBLEMS, default='ackley')
    p.add_argument('--dims', type=int, default=10, help='ignored for the GPUNet problems')
    p.add_argument('--budget', type=int, default=200, help='evaluations per run')
    p.add_argument('--batch', type=int, default=1, help='proposals per round (parallel workers)')
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--methods', default='lamcts,random,evolution,tpe')
    p.add_argument(
        '--report-at',
        type=_int_list,
        help='trial counts to summarise best-so-far at, e.g. 30,50,100,200 (default: --budget)',
    )
    p.add_argument(
        '--method-budgets',
        type=_budgets,
        default={},
        help='cap slow methods, e.g. gp=100 (later budgets are reported as not run)',
    )
    p.add_argument(
        '--workers', type=int, default=1, help='parallel runs (processes; one thread each)'
    )
    p.add_argument(
        '--options',
        type=json.loads,
        default={},
        help='per-method options as JSON, e.g. \'{"lamcts": {"priors": "none"}}\'',
    )
    p.add_argument(
        '--label',
        default='',
        help='rename methods in the results, e.g. lamcts=lamcts-no-priors (ablations)',
    )
    p.add_argument(
        '--latency-budget',
        type=float,
        default=1.0,
        help='ms on the A100 proxy (gpunet-surrogate); gpunet-det-smalldata uses 3x on a T4 proxy',
    )
    p.add_argument('--json', help='write results here')
    p.add_argument(
        '--merge',
        action='store_true',
        help='add/replace these methods in the existing --json file instead of overwriting it',
    )
    p.add_argument('--plot', help='write best-so-far curves here (png)')
    p.add_argument('--markdown', action='store_true', help='print the table as markdown')
    p.add_argument('--quiet', action='store_true', help='no per-run progress lines')
    p.add_argument(
        '--proposal-timing',
        type=int,
        metavar='N_OBS',
        help='instead of searching: time ask(--batch) of each method after N_OBS observations',
    )
    args = p.parse_args(argv)
    if args.workers < 1 or args.seeds < 1 or args.budget < 1 or args.batch < 1:
        p.error('--workers, --seeds, --budget and --batch must be >= 1')
    if args.merge and not args.json:
        p.error('--merge needs --json (the file to merge into)')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    if args.proposal_timing:
        problem = make_problem(args.func, args.dims, latency_budget=args.latency_budget)
        rows = {}
        for m in methods:
            r = time_proposals(problem, m, args.proposal_timing, batch=args.batch)
            rows[m] = r
            print(
                f'{m:>10s}: ask({args.batch}) at {r["n_obs"]} observations: median '
                f'{r["median_s"]:.3f} s, max {r["max_s"]:.3f} s',
                flush=True,
            )
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(dict(config=vars(args), timing=rows), f, indent=1)
        return 0
    results = run_benchmark(
        args.func,
        args.dims,
        args.budget,
        batch=args.batch,
        seeds=args.seeds,
        methods=methods,
        latency_budget=args.latency_budget,
        progress=None if args.quiet else (lambda line: print(line, flush=True)),
        report_at=args.report_at,
        workers=args.workers,
        method_budgets=args.method_budgets,
        options=args.options,
    )
    for item in filter(None, (v.strip() for v in args.label.split(','))):
        old, _, new = item.partition('=')
        if old not in results or not new:
            raise ValueError(f'--label {item!r}: allowed: METHOD=NAME for a method that ran')
        results[new] = results.pop(old)
        cfg = results['config']
        cfg['methods'] = [new if m == old else m for m in cfg['methods']]
        cfg.setdefault('labels', {})[new] = dict(method=old, options=args.options.get(old, {}))
    if args.merge and os.path.exists(args.json):
        with open(args.json) as f:
            results = merge_results(json.load(f), results)
    print(format_table(results, markdown=args.markdown))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f)
    if args.plot:
        plot_curves(results, args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
