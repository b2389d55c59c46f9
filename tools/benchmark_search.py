"""Benchmark the NAS optimisers on the same budget (logic: gpunet_mm.nas.benchmark).

Example::

    python tools/benchmark_search.py --func ackley --dims 10 --budget 200 --batch 1 \
        --seeds 5 --methods lamcts,random,evolution,tpe --json out.json --plot out.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from gpunet_mm.nas.benchmark import (
    format_table,
    plot_curves,
    run_benchmark,
    time_proposals,
)
from gpunet_mm.nas.functions import PROBLEMS, make_problem


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--func', choices=PROBLEMS, default='ackley')
    p.add_argument('--dims', type=int, default=10, help='ignored for gpunet-surrogate')
    p.add_argument('--budget', type=int, default=200, help='evaluations per run')
    p.add_argument('--batch', type=int, default=1, help='proposals per round (parallel workers)')
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--methods', default='lamcts,random,evolution,tpe')
    p.add_argument('--latency-budget', type=float, default=1.0, help='ms, gpunet-surrogate only')
    p.add_argument('--json', help='write results here')
    p.add_argument('--plot', help='write best-so-far curves here (png)')
    p.add_argument('--markdown', action='store_true', help='print the table as markdown')
    p.add_argument('--quiet', action='store_true', help='no per-run progress lines')
    p.add_argument(
        '--proposal-timing',
        type=int,
        metavar='N_OBS',
        help='instead of searching: time ask(--batch) of each method after N_OBS observations',
    )
    return p.parse_args(argv)


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
    )
    print(format_table(results, markdown=args.markdown))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f)
    if args.plot:
        plot_curves(results, args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
