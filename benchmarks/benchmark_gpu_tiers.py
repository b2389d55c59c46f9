"""Batch-1 GPU latency of every published tier's classifier through the package's torch
backend (CUDA events; eager and CUDA-graph replay, fp16 and fp32), next to the paper's
figures. Runs where a CUDA GPU is present (the device machine of some sessions):

    python benchmarks/benchmark_gpu_tiers.py --out benchmarks/results/gpu_tiers_<gpu>.json

The paper's figures are TensorRT 8 FP16 engines on A100/V100 and PyTorch on A100; TensorRT
is not installed on the machines this was measured on, so the rows are PyTorch only.
"""

import argparse
import json
import platform
import time

import torch

from gpunet_mm.analysis import build_gpunet_classifier, count_params
from gpunet_mm.deploy.backends.torch import TorchBackend
from gpunet_mm.models import TIERS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', required=True)
    p.add_argument('--iters', type=int, default=300)
    p.add_argument('--warmup', type=int, default=50)
    p.add_argument('--batch', type=int, default=1)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit('benchmark_gpu_tiers: no CUDA GPU here')
    torch.backends.cudnn.benchmark = True
    rows = []
    for a in TIERS:
        model = build_gpunet_classifier(arch=a).eval()
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
