"""The demo search at equal compute: promotions (``make demo``) against full fidelity.

Runs the demo searches one after the other on this machine, each through
``tools/nas_search.py`` exactly as a user runs it, and reports side by side what each
explored and what its winners reach after the same final retrain:

* ``promotions``: ``configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py`` (rungs of 1, 3
  and 8 epochs, ``nas.compute_budget=48`` epochs, final retrain of the top 2);
* ``full``: ``configs/nas/retinanet_gpunet-nas_fpn_demo_full_ort-cpu.py`` (the same search
  without rungs: 6 candidates, GPUNet-0 included, x 8 epochs = 48 epochs, then the same
  final retrain);
* ``inherit``: ``configs/nas/retinanet_gpunet-nas_fpn_demo_inherit_ort-cpu.py``
  (``promotions`` with weight inheritance, ``nas.inherit``: a new candidate starts from the
  closest candidate that finished the top rung).

For each: wall time of the whole command and of the search itself, candidates trained (at
any rung) and measured, compute spent in epochs (the final retrains not included), the proxy
winner, each final retrain's proxy and final-schedule metric, the final winner, and the
latency predictor's error on the measured proposals. ``--seed S`` runs every mode with
``nas.seed=S randomness.seed=S`` (the optimiser's proposals and the trainings' random
streams; 0 is the configs' own): the JSON holds one record per mode and seed
(``runs['promotions/seed0']``), and a run adds its records to those already there. The JSON
is written after each search; a search whose work dir already holds a ``summary.json`` is
read, not run again (``--rerun`` to start it afresh), and one that was killed is resumed
(its wall time is then marked ``resumed``).

    python benchmarks/benchmark_demo_fidelity.py [--modes promotions,full,inherit] [--seed 0]
        [--work-root work_dirs/demo_fidelity] [--out benchmarks/results/demo_fidelity.json]
        [--cfg-options KEY=VALUE ...]

Needs the demo data (``python tools/misc/make_demo_data.py --skip-cls``). On 8-epoch mAPs at
128 px, differences of about 0.01 are within what another seed moves: one or two seeds per
mode say little.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from gpunet_mm.atomic_write import atomic_write_text

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'promotions': 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py',
    'full': 'configs/nas/retinanet_gpunet-nas_fpn_demo_full_ort-cpu.py',
    'inherit': 'configs/nas/retinanet_gpunet-nas_fpn_demo_inherit_ort-cpu.py',
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--modes', default='promotions,full', help=f'of {sorted(CONFIGS)}')
    p.add_argument('--seed', type=int, default=0, help='nas.seed and randomness.seed of every mode')
    p.add_argument('--work-root', default='work_dirs/demo_fidelity', help='one dir per mode+seed')
    p.add_argument('--out', default='benchmarks/results/demo_fidelity.json')
    p.add_argument('--rerun', action='store_true', help='delete and rerun finished searches')
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every search')
    args = p.parse_args()
    args.modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    bad = [m for m in args.modes if m not in CONFIGS]
    if bad:
        p.error(f'--modes: unknown {bad}; allowed: {sorted(CONFIGS)}')
    if args.seed < 0:
        p.error(f'--seed: got {args.seed}; allowed: integers >= 0')
    return args


def record_key(mode: str, seed: int) -> str:
    """The JSON key of one mode's run at one seed."""
    return f'{mode}/seed{seed}'


def run_search(mode: str, work_dir: str, cfg_options: List[str], rerun: bool) -> Dict[str, Any]:
    """Run (or resume, or just read) one search; returns how it was run and its wall time."""
    summary = osp.join(work_dir, 'summary.json')
    if rerun and osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    if osp.isfile(summary):  # finished before: its figures are read, its wall time unknown
        return dict(ran=False, work_dir=osp.realpath(work_dir))
    resumed = osp.isfile(osp.join(work_dir, 'journal.sqlite'))
    cmd = [sys.executable, 'tools/nas_search.py', CONFIGS[mode], '--work-dir', work_dir]
    cmd += ['--no-progress'] + (['--resume'] if resumed else [])
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with open(osp.normpath(work_dir) + '.log', 'a') as log:
        # one header per run: the log gathers every run of a mode and seed, each run's stderr
        # as it comes and its stdout at its end, and without the headers a later run's
        # first error read as the end of the run before it
        log.write(f'=== {time.strftime("%Y-%m-%d %H:%M:%S")} {" ".join(cmd)}\n')
        log.flush()
        out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        log.write(f'--- its stdout (exit status {out.returncode}):\n{out.stdout}')
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f'{mode}: {" ".join(cmd)} failed ({out.returncode}); see the log')
    last = out.stdout.strip().splitlines()[-1]
    return dict(
        ran=True,
        resumed=resumed,
        command=' '.join(cmd[1:]),
        wall_s=round(wall, 1),
        loadavg_start=[round(x, 2) for x in load0],
        loadavg_end=[round(x, 2) for x in os.getloadavg()],
        last_line=last,
    )


def _brief(t: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if t is None:
        return None
    keys = ('trial_id', 'arch_hash', 'origin', 'latency_ms', 'metric', 'params')
    return {k: t[k] for k in keys if k in t}


def inherited(work_dir: str) -> Optional[Dict[str, Any]]:
    """How many candidates started from a parent's weights (``nas.inherit``) and how much of
    their weights they got, from the first rung results in the journal; None: no rungs."""
    db = osp.abspath(osp.join(work_dir, 'journal.sqlite'))
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    try:
        rows = con.execute('SELECT trial_id, result FROM rung_results WHERE rung=0').fetchall()
    finally:
        con.close()
    if not rows:
        return None
    got = {tid: json.loads(r).get('inherited') for tid, r in rows}
    got = {tid: i for tid, i in got.items() if i}
    return dict(
        candidates=len(rows),
        inherited=len(got),
        fraction_median=round(statistics.median(i['fraction'] for i in got.values()), 4)
        if got
        else None,
        trials=sorted(got),
    )


def collect(work_dir: str) -> Dict[str, Any]:
    """The figures of one finished search, from its summary.json and results.json."""
    with open(osp.join(work_dir, 'summary.json')) as f:
        s = json.load(f)
    with open(osp.join(work_dir, 'results.json')) as f:
        r = json.load(f)
    fin = s.get('final') or {}
    fid = s.get('fidelity')
    return dict(
        candidates_trained=len(r['trials']),
        # trained, or measured over every budget and never trained
        candidates_measured=sum(
            s['trials_by_status'].get(k, 0) for k in ('complete', 'failed', 'infeasible')
        ),
        trials_by_status=s['trials_by_status'],
        compute_epochs=s.get('compute_epochs'),
        compute_budget=s.get('compute_budget'),
        fidelity=fid
        and dict(
            rung_epochs=fid['rung_epochs'],
            eta=fid['eta'],
            rung_occupancy=fid['rung_occupancy'],
            promotions=fid['promotions'],
        ),
        budgets_ms=s['budgets_ms'],
        proxy_winner={b: _brief(t) for b, t in s['best_per_budget'].items()},
        references={k: _brief(t) for k, t in s['references'].items()},
        final_runs=fin.get('runs'),
        final_winner=fin.get('winners'),
        final_schedule=fin.get('schedule'),
        latency_predictor=s.get('latency_predictor'),
        inheritance=inherited(work_dir),
        search_wall_s=s.get('wall_s'),
        stop_reason=s.get('stop_reason'),
    )


def _upgrade(runs: Dict[str, Any]) -> Dict[str, Any]:
    """Records of the first version of this JSON (keyed by mode only, seed 0) under their
    ``mode/seed0`` key."""
    return {
        k if '/' in k else record_key(k, 0): v if '/' in k else dict(mode=k, seed=0, **v)
        for k, v in runs.items()
    }


def main() -> None:
    args = parse_args()
    opts = [f'nas.seed={args.seed}', f'randomness.seed={args.seed}'] if args.seed else []
    opts += args.cfg_options
    out: Dict[str, Any] = dict(
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        machine=dict(cpus=os.cpu_count(), processor=platform.processor() or platform.machine()),
        configs=dict(CONFIGS),
        runs={},
    )
    if osp.isfile(args.out):
        with open(args.out) as f:
            old = json.load(f)
        old_opts = old.get('cfg_options') or []  # the first version kept them at the top
        out['runs'] = {
            k: dict(v, date=v.get('date', old['date']), cfg_options=v.get('cfg_options', old_opts))
            for k, v in _upgrade(old.get('runs', {})).items()
        }
    for mode in args.modes:
        key = record_key(mode, args.seed)
        wd = osp.join(args.work_root, key.replace('/', '_'))
        how = run_search(mode, wd, opts, args.rerun)
        prev = out['runs'].get(key, {})
        now = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
        out['runs'][key] = dict(
            mode=mode,
            seed=args.seed,
            date=now if how['ran'] else prev.get('date', now),  # when it ran
            cfg_options=opts,
            run=how if how['ran'] or 'run' not in prev else prev['run'],
            **collect(wd),
        )
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        atomic_write_text(args.out, json.dumps(out, indent=2) + '\n')
        r = out['runs'][key]
        wins = {b: (w or {}).get('final_metric') for b, w in (r['final_winner'] or {}).items()}
        print(
            f'{key}: {r["candidates_trained"]} candidates trained '
            f'({r["candidates_measured"]} measured), {r["compute_epochs"]} epochs, '
            f'final winner {wins}, search wall {r["search_wall_s"]:.0f} s'
        )


if __name__ == '__main__':
    main()
