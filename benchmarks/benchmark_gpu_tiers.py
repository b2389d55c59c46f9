"""Batch-1 GPU latency of every published tier's classifier through the package's one
latency service (:func:`gpunet_mm.deploy.measure_latency`, torch backend: CUDA events;
eager and CUDA-graph replay, fp16 and fp32), next to the paper's figures. Runs where a CUDA
GPU is present (the device machine of some sessions):

    python benchmarks/benchmark_gpu_tiers.py --out benchmarks/results/gpu_tiers_<gpu>.json
    python benchmarks/benchmark_gpu_tiers.py --out benchmarks/results/gpu_tiers_h100.json \
        --hub-rows gpunet_mm/hub/data/measured_gpu_h100.jsonl   # the rows the hub ships

``--device cpu`` runs the same code on the CPU (eager only: CUDA graphs need a GPU), e.g. a
smoke run of the path on a machine without one (figures not comparable with the GPU's):

    python benchmarks/benchmark_gpu_tiers.py --device cpu --tiers 0 --precisions fp32 \
        --iters 3 --warmup 1 --out /tmp/gpu_tiers_cpu.json

With ``--cache`` the measurements are stored under the one key of every tool
(:func:`gpunet_mm.deploy.latency_key`), so ``tools/benchmark_latency.py`` and the hub
benchmark find them. The paper's figures are TensorRT 8 FP16 engines on A100/V100 and
PyTorch on A100; TensorRT is not installed on the machines this was measured on, so the rows
are PyTorch only.
"""

import argparse
import json
import platform
import time
from typing import List, Optional, Sequence

import torch

from gpunet_mm.complexity import count_params
from gpunet_mm.deploy import LatencyCache, LatencyTarget, get_backend, measure_latency
from gpunet_mm.deploy.latency import build_classifier
from gpunet_mm.models import TIERS
from gpunet_mm.models.tiers import get_tier


def hub_rows(results_file: str, out_file: str) -> int:
    """Write the measured rows as model-hub entries (provenance ``measured``): the CUDA
    graph figures, fp16 and fp32, each tier with its published top-1."""
    from gpunet_mm.hub.configs import classification_config
    from gpunet_mm.hub.entry import HubEntry
    from gpunet_mm.hub.store import write_entries
    from gpunet_mm.models.tiers import TIER_SHORT

    with open(results_file) as f:
        data = json.load(f)
    env = data['env']
    entries = []
    for r in data['rows']:
        a = get_tier(r['tier'])
        i = [t.name for t in TIERS].index(r['tier'])
        for precision in ('fp16', 'fp32'):
            entries.append(
                HubEntry(
                    name=a.name,
                    task='classification',
                    input_shape=(a.resolution,) * 2,
                    batch=int(env['batch']),
                    device=env['gpu'],
                    backend='torch',
                    backend_version=env['torch'],
                    precision=precision,
                    latency_ms=r[f'cudagraph_{precision}_median_ms'],
                    latency_stat=f'median of {env["iters"]} CUDA-graph replays (CUDA events), '
                    'network only (input tensor to logits)',
                    latency_detail=dict(
                        p90_ms=r[f'cudagraph_{precision}_p90_ms'],
                        eager_median_ms=r[f'eager_{precision}_median_ms'],
                    ),
                    metric=a.meta['top1'],
                    metric_dataset='ImageNet-1k val',
                    metric_source='paper',
                    params=a.meta.get('params'),
                    flops=a.meta.get('flops'),
                    tier=a.name,
                    config=classification_config(TIER_SHORT[i]),
                    provenance=dict(
                        kind='measured',
                        tool='benchmarks/benchmark_gpu_tiers.py',
                        date=env['date'],
                        environment={
                            k: env[k] for k in ('gpu', 'torch', 'cuda', 'cudnn', 'python')
                        },
                    ),
                )
            )
    write_entries(out_file, entries)
    return len(entries)


def measure_tier(
    arch,
    device: str,
    modes: Sequence[str],
    precisions: Sequence[str],
    args: argparse.Namespace,
    cache: Optional[LatencyCache],
) -> dict:
    """One result row: the tier's classifier timed by the latency service in each mode and
    precision (``<mode>_<precision>_median_ms`` / ``_p90_ms``)."""
    row = dict(
        tier=arch.name,
        resolution=arch.resolution,
        params_m=count_params(build_classifier(arch)) / 1e6,
        paper=arch.meta,
    )
    for precision in precisions:
        target = LatencyTarget(
            backend='torch',
            device=device,
            precision=precision,
            batch=args.batch,
            iters=args.iters,
            warmup=args.warmup,
        )
        for mode in modes:
            backend = get_backend('torch', device=device, mode=mode)
            r, _ = measure_latency(
                arch, None, target, cache=cache, task='classification', backend=backend
            )
            row[f'{mode}_{precision}_median_ms'] = round(r.median_ms, 4)
            row[f'{mode}_{precision}_p90_ms'] = round(r.p90_ms, 4)
    return row


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', required=True)
    p.add_argument(
        '--hub-rows',
        default=None,
        metavar='JSONL',
        help='write hub rows from an existing --out file instead of measuring',
    )
    p.add_argument('--iters', type=int, default=300)
    p.add_argument('--warmup', type=int, default=50)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument(
        '--device',
        choices=('cuda', 'cpu'),
        default='cuda',
        help='cpu: the same path without a GPU (eager only), for a smoke run',
    )
    p.add_argument(
        '--tiers', nargs='+', default=None, help='tier names or indices (default: all seven)'
    )
    p.add_argument('--precisions', nargs='+', choices=('fp16', 'fp32'), default=['fp16', 'fp32'])
    p.add_argument('--cache', default=None, help='a LatencyCache file (default: none)')
    args = p.parse_args(argv)
    if args.hub_rows:
        n = hub_rows(args.out, args.hub_rows)
        print(f'{n} hub rows written to {args.hub_rows}')
        return
    if args.device == 'cuda':
        if not torch.cuda.is_available():
            raise SystemExit('benchmark_gpu_tiers: no CUDA GPU here (--device cpu for a smoke run)')
        torch.backends.cudnn.benchmark = True
    modes = ('eager', 'cudagraph') if args.device == 'cuda' else ('eager',)
    tiers = TIERS if args.tiers is None else [get_tier(t) for t in args.tiers]
    cache = LatencyCache(args.cache) if args.cache else None
    rows = []
    for a in tiers:
        row = measure_tier(a, args.device, modes, args.precisions, args, cache)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != 'paper'}), flush=True)
    env = dict(
        gpu=torch.cuda.get_device_name(0) if args.device == 'cuda' else None,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        python=platform.python_version(),
        date=time.strftime('%Y-%m-%d'),
        batch=args.batch,
        iters=args.iters,
        warmup=args.warmup,
    )
    if args.device == 'cpu':
        from gpunet_mm.deploy.backends.base import cpu_name

        env['cpu'] = cpu_name()
    with open(args.out, 'w') as f:
        json.dump(dict(env=env, rows=rows), f, indent=1, default=str)
    print(json.dumps(env))


if __name__ == '__main__':
    main()
