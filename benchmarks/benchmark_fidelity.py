"""Fidelity study: does a short rung rank candidates the way the full schedule does?

Run it on your own data before a big multi-fidelity search (docs/search_fidelity.md, "The
fidelity study"): it trains N architectures (the published tiers at the search's resolution plus
random ones within the latency band the search explores) with the search's own worker code
and schedule, and reports, for every rung (``--rungs``: the epochs your ``nas.fidelity`` rungs end
at, then the full proxy schedule):

* **prefix** (what the search does): the rung is the first epochs of the full schedule, and
  each rung continues from the previous rung's checkpoint (mmengine resume);
* **per-rung schedule** (``--per-rung``): the LR schedule squeezed into the rung, from
  scratch (what a short proxy run does);
* **inheritance** (``--inherit``): the prefix rungs again, each candidate starting from
  the closest other candidate's full-schedule checkpoint (OFA-style weight inheritance);

with Kendall tau and top-k overlap of each rung's metric against the full-schedule metric
of the from-scratch prefix chain. Results are written after every finished chain (a killed
run keeps what it finished; rerun with the same --out to continue).

    python benchmarks/benchmark_fidelity.py [CONFIG] [--num-random 7] [--rungs 1,3]
        [--full-epochs 8] [--train-images 64] [--val-images 32]
        [--image-size 128] [--resolution 96] [--workers 2] [--per-rung] [--inherit]
        [--out benchmarks/results/fidelity_demo.json]

Options not given keep the config's values; the data options (the built-in demo data only)
shrink the study to fit a small machine: what scale a run used is in its JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import json
import multiprocessing as mp
import os
import os.path as osp
import platform
import time
from typing import Any, Dict, List

from gpunet_mm.atomic_write import atomic_write_text

CONFIG = 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py'
TIERS = ('GPUNet-0', 'GPUNet-1', 'GPUNet-2', 'GPUNet-P0', 'GPUNet-P1')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', nargs='?', default=CONFIG, help='a search config')
    p.add_argument('--tiers', default=','.join(TIERS), help='published tiers to include')
    p.add_argument('--num-random', type=int, default=7, help='random archs in the band')
    p.add_argument(
        '--band',
        type=float,
        default=1.5,
        help="random archs up to this many times the first tier's predicted latency and FLOPs",
    )
    p.add_argument(
        '--rungs',
        default='1,3',
        help='epochs the rungs below the full schedule end at (your nas.fidelity rungs)',
    )
    p.add_argument('--full-epochs', type=int, default=None, help='proxy schedule length')
    p.add_argument('--train-images', type=int, default=None, help='demo data: train images')
    p.add_argument('--val-images', type=int, default=None, help='demo data: val images')
    p.add_argument('--image-size', type=int, default=None, help='demo data: image side')
    p.add_argument(
        '--data-root',
        default=None,
        help='demo data folder (default: a new one next to --work-dir when a data option is given)',
    )
    p.add_argument(
        '--resolution', type=int, default=None, help="input size (default: the search space's)"
    )
    p.add_argument('--workers', type=int, default=2, help='parallel trainings (1 thread each)')
    p.add_argument('--per-rung', action='store_true', help='also one schedule per rung')
    p.add_argument(
        '--per-rung-at',
        default=None,
        help='the rungs (of --rungs) the per-rung schedules train to (default: all of them)',
    )
    p.add_argument('--inherit', action='store_true', help='also with weight inheritance')
    p.add_argument(
        '--inherit-rungs', type=int, default=1, help='how many rungs the inheritance runs train'
    )
    p.add_argument('--top-k', type=int, default=3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work-dir', default='work_dirs/benchmark_fidelity')
    p.add_argument('--out', default='benchmarks/results/fidelity_demo.json')
    return p.parse_args()


def point_data(cfg: Dict[str, Any], root: str) -> None:
    """Every dataloader and evaluator of ``cfg`` reads the demo set in ``root``."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key]['dataset']['data_root'] = root
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key]['ann_file'] = osp.join(root, 'annotations', 'instances_val.json')


def pick_archs(cfg: Dict[str, Any], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The tiers at the search's resolution, then random archs whose predicted latency and
    FLOPs are within ``band`` times the first tier's (the band the search's budgets explore:
    the demo's budget is 1.1x GPUNet-0; FLOPs also bound the CPU training time)."""
    import numpy as np

    from gpunet_mm.models.arch_spec import GPUNetArch
    from gpunet_mm.nas import build_space
    from gpunet_mm.nas.latency_proxy import arch_flops, latency_proxy
    from gpunet_mm.search.api import reference_arch

    space = build_space(cfg['search_space'])
    out = [dict(name=t, arch=reference_arch(t, space)) for t in args.tiers.split(',') if t]
    first = GPUNetArch.from_dict(out[0]['arch'])
    limit, flimit = args.band * latency_proxy(first), args.band * arch_flops(first)
    rng = np.random.default_rng(args.seed)
    seen = {GPUNetArch.from_dict(o['arch']).structural_hash() for o in out}
    want, draws = len(out) + args.num_random, 0
    while len(out) < want and draws < 100_000:
        draws += 1
        a = space.decode(space.sample(1, rng)[0])
        h = a.structural_hash()
        if h in seen or latency_proxy(a) > limit or arch_flops(a) > flimit:
            continue
        seen.add(h)
        out.append(dict(name=f'random-{len(out)}', arch=a.to_dict()))
    return out


def chain(job: Dict[str, Any]) -> Dict[str, Any]:
    """One candidate through every rung (continued from checkpoints), plus the per-rung
    schedules; runs in a worker process with one torch thread."""
    import torch

    torch.set_num_threads(1)
    from gpunet_mm.search.continuation import rescaled_schedule
    from gpunet_mm.search.trainer import train_candidate

    cfg, arch, root, metric = job['cfg'], job['arch'], job['dir'], job['metric']
    parent = job.get('parent')
    out: Dict[str, Any] = dict(name=job['name'], kind=job['kind'], rungs={}, wall_s={})
    if parent:
        out['parent'] = dict(name=parent['name'], fraction=parent['fraction'])
    if job['kind'] == 'per_rung':
        for e in job['rungs']:
            t0 = time.perf_counter()
            r = train_candidate(
                rescaled_schedule(cfg, e), arch, osp.join(root, f'per_rung_e{e}'), threads=1
            )
            out['rungs'][str(e)] = r[metric]
            out['wall_s'][str(e)] = round(time.perf_counter() - t0, 1)
        return out
    ckpt = None
    for i, e in enumerate(job['rungs']):
        t0 = time.perf_counter()
        r = train_candidate(
            cfg,
            arch,
            osp.join(root, f'{job["kind"]}_e{e}'),
            threads=1,
            epochs=e,
            resume_from=ckpt,
            inherit_from=parent if (parent and i == 0) else None,
        )
        out['rungs'][str(e)] = r[metric]
        out['wall_s'][str(e)] = round(time.perf_counter() - t0, 1)
        assert r['epochs'] == e and r['epochs_trained'] == e - (job['rungs'][i - 1] if i else 0)
        ckpt = r['checkpoint']
        if 'inherited' in r:
            out['inherited'] = r['inherited']
    out['checkpoint'] = ckpt
    return out


def summarise(results: Dict[str, Any], rungs: List[int], top_k: int) -> Dict[str, Any]:
    from gpunet_mm.search.continuation import rank_agreement

    full = {n: c['rungs'][str(rungs[-1])] for n, c in results['prefix'].items()}
    out: Dict[str, Any] = {}
    for kind in ('prefix', 'per_rung', 'inherit'):
        chains = results.get(kind) or {}
        rows = {}
        for e in rungs[:-1]:
            low = {n: c['rungs'][str(e)] for n, c in chains.items() if str(e) in c['rungs']}
            if len(low) >= 3 and len(full) >= 3:
                # the mean metric says how far a rung got (inheritance starts ahead)
                rows[str(e)] = dict(
                    rank_agreement(low, full, top_k), mean_metric=sum(low.values()) / len(low)
                )
        if rows:
            out[kind] = rows
    # does an inherited rung rank the candidate or its parent? (tau against the parent's
    # full metric, and against the share of weights inherited)
    inh = results.get('inherit') or {}
    for e in rungs[:-1]:
        low = {n: c['rungs'][str(e)] for n, c in inh.items() if str(e) in c['rungs']}
        parents = {n: full.get(inh[n]['parent']['name']) for n in low}
        if len(low) >= 3 and None not in parents.values():
            frac = {n: inh[n]['inherited']['fraction'] for n in low if 'inherited' in inh[n]}
            out['inherit'][str(e)]['tau_vs_parent_full'] = rank_agreement(low, parents, top_k)[
                'kendall_tau'
            ]
            if len(frac) >= 3:
                out['inherit'][str(e)]['tau_vs_fraction'] = rank_agreement(low, frac, top_k)[
                    'kendall_tau'
                ]
    return out


def main() -> None:
    args = parse_args()
    from gpunet_mm.search.api import load_search_config, nas_settings
    from gpunet_mm.search.continuation import schedule_epochs

    cfg = load_search_config(args.config)
    if args.full_epochs:
        cfg['train_cfg']['max_epochs'] = args.full_epochs
        for s in cfg.get('param_scheduler') or []:
            if s.get('by_epoch', True) and s.get('type') == 'CosineAnnealingLR':
                s['end'] = args.full_epochs
    if args.resolution:
        cfg['search_space']['resolutions'] = [args.resolution]
    low = sorted({int(e) for e in args.rungs.split(',') if e.strip()})
    full = schedule_epochs(cfg)
    if low and (low[0] < 1 or low[-1] >= full):
        raise SystemExit(
            f'--rungs: got {low}; allowed: epochs in 1..{full - 1} (below the full schedule)'
        )
    rungs = [*low, full]
    os.makedirs(args.work_dir, exist_ok=True)
    data = None
    if args.train_images or args.val_images or args.image_size or args.data_root:
        from gpunet_mm.datasets import generate_detection_demo

        root = args.data_root or osp.join(args.work_dir, 'data', 'demo_det')
        kw = dict(num_train=args.train_images, num_val=args.val_images, image_size=args.image_size)
        data = generate_detection_demo(root, **{k: v for k, v in kw.items() if v})
        point_data(cfg, osp.abspath(root) + '/')
    metric = nas_settings(cfg)['metric']
    archs = pick_archs(cfg, args)
    results: Dict[str, Any] = dict(prefix={}, per_rung={}, inherit={})
    if osp.isfile(args.out):  # continue a killed run
        with open(args.out) as f:
            old = json.load(f)
        if old.get('rungs') == rungs and [a['name'] for a in old.get('archs', [])] == [
            a['name'] for a in archs
        ]:
            results = old['results']
    t_start = time.perf_counter()

    def write(done: bool = False) -> None:
        payload = dict(
            what='rank agreement of each rung with the full proxy schedule (demo data)',
            config=args.config,
            rungs=rungs,
            metric=metric,
            scale=dict(
                train_images=(data or {}).get('num_train'),
                val_images=(data or {}).get('num_val'),
                image_size=(data or {}).get('image_size'),
                resolution=cfg['search_space'].get('resolutions'),
                batch_size=cfg['train_dataloader'].get('batch_size'),
                workers=args.workers,
                threads_per_training=1,
            ),
            archs=[dict(name=a['name'], arch=a['arch']) for a in archs],
            results=results,
            summary=summarise(results, rungs, args.top_k),
            wall_s=round(time.perf_counter() - t_start, 1),
            complete=done,
            env=dict(cpu_count=os.cpu_count(), python=platform.python_version()),
        )
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        atomic_write_text(args.out, json.dumps(payload, indent=1))

    def run_jobs(jobs: List[Dict[str, Any]]) -> None:
        ctx = mp.get_context('spawn')
        with cf.ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
            futs = {pool.submit(chain, j): j for j in jobs}
            for fut in cf.as_completed(futs):
                j = futs[fut]
                try:
                    results[j['kind']][j['name']] = fut.result()
                except Exception as e:  # keep the others; the JSON says what failed
                    results.setdefault('errors', {})[f'{j["kind"]}:{j["name"]}'] = repr(e)[:2000]
                write()
                print(
                    f'{j["kind"]} {j["name"]}: {results[j["kind"]].get(j["name"], {})}', flush=True
                )

    def job(a: Dict[str, Any], kind: str, job_rungs: List[int], **kw: Any) -> Dict[str, Any]:
        d = osp.abspath(osp.join(args.work_dir, a['name']))
        return dict(
            name=a['name'],
            arch=a['arch'],
            cfg=copy.deepcopy(cfg),
            dir=d,
            kind=kind,
            rungs=job_rungs,
            metric=metric,
            **kw,
        )

    jobs = [job(a, 'prefix', rungs) for a in archs if a['name'] not in results['prefix']]
    if args.per_rung:
        at = low
        if args.per_rung_at:
            at = sorted({int(e) for e in args.per_rung_at.split(',') if e.strip()})
            if not set(at) <= set(low):
                raise SystemExit(f'--per-rung-at: got {at}; allowed: a subset of --rungs {low}')
        jobs += [job(a, 'per_rung', at) for a in archs if a['name'] not in results['per_rung']]
    run_jobs(jobs)
    if args.inherit:
        from gpunet_mm.search.inherit import closest_parent

        finished = [
            dict(
                name=n,
                arch=next(a['arch'] for a in archs if a['name'] == n),
                checkpoint=c['checkpoint'],
            )
            for n, c in results['prefix'].items()
            if c.get('checkpoint')
        ]
        jobs = []
        for a in archs:
            if a['name'] in results['inherit']:
                continue
            parent = closest_parent(a['arch'], [f for f in finished if f['name'] != a['name']])
            if parent is not None:
                jobs.append(job(a, 'inherit', rungs[: args.inherit_rungs], parent=parent))
        run_jobs(jobs)
    write(done=True)
    print(json.dumps(summarise(results, rungs, args.top_k), indent=1))


if __name__ == '__main__':
    main()
