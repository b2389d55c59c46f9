"""Can the controller keep hundreds of workers busy? (issue: scale without a cluster)

Runs the real search controller (LA-MCTS-BO per budget, the SQLite journal with fsync on
every commit, the predictor, dispatch) in ``--simulate`` mode: trainings are virtual
(lognormal durations, mean 60 s) and every second the controller spends is charged to the
virtual clock. Reports dispatch efficiency (busy worker time / available worker time) and
controller CPU time per trial for each worker count.

    python benchmarks/benchmark_nas_dispatch.py [--workers 8,64,300] [--rounds 4]
        [--out work_dirs/benchmark_nas_dispatch/nas_dispatch.json] [--overwrite]
"""

import argparse
import json
import os
import os.path as osp
import shutil
import tempfile
import time

from gpunet_mm.search.api import load_search_config, run_search

CONFIG = 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py'


def run(workers: int, rounds: int, mean_s: float, budgets, seed: int) -> dict:
    cfg = load_search_config(CONFIG)
    cfg['search_space'] = dict(
        type='GPUNetSpace', variant='detection', resolutions=[320, 384, 448, 512]
    )
    trials = workers * rounds
    ahead = max(4, workers // 8)
    cfg['nas'].update(
        num_trials=trials,
        propose_ahead=ahead,
        ask_batch=max(8, ahead),
        ask_min=max(1, ahead // 2),
        seed=seed,
        references=['GPUNet-0'],
        calibration_samples=4,
    )
    cfg['nas']['simulate'] = dict(
        budgets=budgets,
        num_workers=workers,
        mean_trial_s=mean_s,
        duration_sigma=0.3,
        failure_rate=0.02,
    )
    wd = tempfile.mkdtemp(prefix=f'nas_sim{workers}_')
    t0 = time.perf_counter()
    try:
        s = run_search(cfg, wd, simulate=True, write_reports=False)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    wall = time.perf_counter() - t0
    return dict(
        workers=workers,
        trials=trials,
        mean_trial_s=mean_s,
        propose_ahead=ahead,
        ask_min=max(1, ahead // 2),
        dispatch_efficiency=round(s['dispatch_efficiency'], 4),
        controller_cpu_s_per_trial=round(s['controller_cpu_s_per_trial'], 4),
        controller_cpu_s=round(s['controller_cpu_s'], 1),
        virtual_wall_s=round(s['virtual_wall_s'], 1),
        real_wall_s=round(wall, 1),
        trials_by_status=s['trials_by_status'],
        best_per_budget={k: (v or {}).get('metric') for k, v in s['best_per_budget'].items()},
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workers', default='8,64,300')
    p.add_argument('--rounds', type=int, default=4, help='trials = workers * rounds')
    p.add_argument('--mean-trial-s', type=float, default=60.0)
    p.add_argument('--budgets', default='1.0,1.5,2.0')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--out',
        default='work_dirs/benchmark_nas_dispatch/nas_dispatch.json',
        help='where the rows go (default: %(default)s; the committed figures are '
        'benchmarks/results/nas_dispatch.json: replacing them takes --out that path and '
        '--overwrite)',
    )
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    args = p.parse_args()
    args.out = osp.abspath(args.out)
    if osp.exists(args.out) and not args.overwrite:
        p.error(f'{args.out} exists (committed results?); pass --overwrite to replace it')
    os.chdir(osp.join(osp.dirname(osp.abspath(__file__)), '..'))
    budgets = [float(b) for b in args.budgets.split(',')]
    rows = []
    for w in [int(v) for v in args.workers.split(',')]:
        r = run(w, args.rounds, args.mean_trial_s, budgets, args.seed)
        print(json.dumps(r), flush=True)
        rows.append(r)
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(rows=rows, budgets=budgets, rounds=args.rounds), f, indent=1)
    print('| workers | trials | dispatch efficiency | controller CPU s/trial |')
    print('|---|---|---|---|')
    for r in rows:
        print(
            f'| {r["workers"]} | {r["trials"]} | {100 * r["dispatch_efficiency"]:.1f} % | '
            f'{r["controller_cpu_s_per_trial"]:.3f} |'
        )


if __name__ == '__main__':
    main()
