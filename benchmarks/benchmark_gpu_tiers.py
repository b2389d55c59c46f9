"""Batch-1 GPU latency of every published tier's classifier through the package's torch
backend (CUDA events; eager and CUDA-graph replay, fp16 and fp32), next to the paper's
figures. Runs where a CUDA GPU is present (the device machine of some sessions):

    python benchmarks/benchmark_gpu_tiers.py --out benchmarks/results/gpu_tiers_<gpu>.json
    python benchmarks/benchmark_gpu_tiers.py --out benchmarks/results/gpu_tiers_h100.json \
        --hub-rows gpunet_mm/hub/data/measured_gpu_h100.jsonl   # the rows the hub ships

The paper's figures are TensorRT 8 FP16 engines on A100/V100 and PyTorch on A100; TensorRT
is not installed on the machines this was measured on, so the rows are PyTorch only.
"""

import argparse
import json
import platform
import time

import torch

from gpunet_mm.complexity import count_params
from gpunet_mm.deploy.backends.torch import TorchBackend
from gpunet_mm.models import TIERS
from gpunet_mm.models.classifiers import build_release_classifier


def hub_rows(results_file: str, out_file: str) -> int:
    """Write the measured rows as model-hub entries (provenance ``measured``): the CUDA
    graph figures, fp16 and fp32, each tier with its published top-1."""
    from gpunet_mm.hub.configs import classification_config
    from gpunet_mm.hub.entry import HubEntry
    from gpunet_mm.hub.store import write_entries
    from gpunet_mm.models.tiers import TIER_SHORT, get_tier

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


def main() -> None:
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
    args = p.parse_args()
    if args.hub_rows:
        n = hub_rows(args.out, args.hub_rows)
        print(f'{n} hub rows written to {args.hub_rows}')
        return
    if not torch.cuda.is_available():
        raise SystemExit('benchmark_gpu_tiers: no CUDA GPU here')
    torch.backends.cudnn.benchmark = True
    rows = []
    for a in TIERS:
        model = build_release_classifier(arch=a).eval()
        row = dict(
            tier=a.name, resolution=a.resolution, params_m=count_params(model) / 1e6, paper=a.meta
        )
        for precision in ('fp16', 'fp32'):
            for mode in ('eager', 'cudagraph'):
                r = TorchBackend(device='cuda', mode=mode).measure(
                    model,
                    shape=(a.resolution, a.resolution),
                    batch=args.batch,
                    iters=args.iters,
                    warmup=args.warmup,
                    precision=precision,
                )
                row[f'{mode}_{precision}_median_ms'] = round(r.median_ms, 4)
                row[f'{mode}_{precision}_p90_ms'] = round(r.p90_ms, 4)
                model = model.float()
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != 'paper'}), flush=True)
    env = dict(
        gpu=torch.cuda.get_device_name(0),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        python=platform.python_version(),
        date=time.strftime('%Y-%m-%d'),
        batch=args.batch,
        iters=args.iters,
        warmup=args.warmup,
    )
    with open(args.out, 'w') as f:
        json.dump(dict(env=env, rows=rows), f, indent=1, default=str)
    print(json.dumps(env))


if __name__ == '__main__':
    main()
