"""CPU benchmark of every GPUNet tier at its native resolution, plus GPUNet-0 next to
mmpretrain's EfficientNet-B0 at the same input, measured side by side in one run.

    python benchmarks/benchmark_backbones.py [--json out.json] [--md out.md] [--quick]

Per model: parameters, FLOPs (MACs), forward and forward+backward throughput (images/s),
peak resident memory of a forward+backward step above the process's idle baseline. Each
model runs in a fresh subprocess so peak memory is its own. CPU timings are noisy: compare
the ratios of one run, not absolute numbers across runs.
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from typing import Any, Dict


def _build(kind: str, name: str):
    if kind == 'gpunet':
        from gpunet_mm.models.classifiers import build_release_classifier

        return build_release_classifier(name)
    from gpunet_mm.apis import build_model

    # mmpretrain's EfficientNet-B0 classifier; plain Conv2d padding like GPUNet for fairness
    return build_model(
        dict(
            type='ImageClassifier',
            backbone=dict(type='EfficientNet', arch='b0', conv_cfg=None),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=1000, in_channels=1280),
        ),
        'mmpretrain',
    )


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(
    kind: str, name: str, res: int, batch: int, budget_s: float, threads: int, queue: Any
) -> None:
    import torch

    from gpunet_mm.complexity import count_flops, count_params

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _build(kind, name)
    params = count_params(model)
    flops = count_flops(model, res)
    x = torch.rand(batch, 3, res, res)
    out: Dict[str, Any] = dict(
        model=name, resolution=res, batch=batch, params_m=params / 1e6, gflops=flops / 1e9
    )

    def timed(step, warmup: int = 1) -> float:
        for _ in range(warmup):
            step()
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            el = time.perf_counter() - t0
            if el > budget_s and n >= 2:
                return n * batch / el

    model.eval()
    with torch.no_grad():
        out['fwd_img_s'] = timed(lambda: model(x, mode='tensor'))
    model.train()
    base = _maxrss_mb()

    def train_step():
        model.zero_grad(set_to_none=True)
        model(x, mode='tensor').float().sum().backward()

    out['fwd_bwd_img_s'] = timed(train_step)
    out['peak_mem_mb'] = _maxrss_mb() - base + 0.0
    out['peak_rss_mb'] = _maxrss_mb()
    queue.put(out)


def run_one(
    kind: str, name: str, res: int, batch: int, budget_s: float, threads: int
) -> Dict[str, Any]:
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(kind, name, res, batch, budget_s, threads, q))
    p.start()
    result = q.get()
    p.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--json', default='benchmarks/results/backbones_cpu.json')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument(
        '--budget-s', type=float, default=8.0, help='seconds of timing per measurement'
    )
    parser.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--quick', action='store_true', help='3 tiers, short budget')
    args = parser.parse_args()
    from gpunet_mm.models import TIERS

    tiers = TIERS[:1] + TIERS[3:4] if args.quick else TIERS
    budget = 2.0 if args.quick else args.budget_s
    rows = []
    for a in tiers:
        r = run_one('gpunet', a.name, a.resolution, args.batch, budget, args.threads)
        rows.append(r)
        print(
            f'{r["model"]:<16} {r["resolution"]:>4} {r["params_m"]:>7.2f}M '
            f'{r["gflops"]:>7.3f}G fwd {r["fwd_img_s"]:>7.2f} img/s  fwd+bwd '
            f'{r["fwd_bwd_img_s"]:>6.2f} img/s  peak +{r["peak_mem_mb"]:.0f} MB',
            flush=True,
        )
    # side by side, same input, same process settings, back to back
    res = TIERS[0].resolution
    pair = [
        run_one('gpunet', 'GPUNet-0', res, args.batch, budget, args.threads),
        run_one('effnet', 'EfficientNet-B0', res, args.batch, budget, args.threads),
    ]
    ratio = {k: pair[0][k] / pair[1][k] for k in ('fwd_img_s', 'fwd_bwd_img_s')}
    for r in pair:
        print(
            f'{r["model"]:<16} {r["resolution"]:>4} {r["params_m"]:>7.2f}M '
            f'{r["gflops"]:>7.3f}G fwd {r["fwd_img_s"]:>7.2f} img/s  fwd+bwd '
            f'{r["fwd_bwd_img_s"]:>6.2f} img/s',
            flush=True,
        )
    print(
        f'GPUNet-0 / EfficientNet-B0 throughput at {res}: fwd {ratio["fwd_img_s"]:.2f}x, '
        f'fwd+bwd {ratio["fwd_bwd_img_s"]:.2f}x'
    )
    import torch

    env = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        cpu=platform.processor() or platform.machine(),
        threads=args.threads,
        batch=args.batch,
        date=time.strftime('%Y-%m-%d'),
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as f:
        json.dump(
            dict(env=env, tiers=rows, vs_efficientnet=dict(pair=pair, ratio=ratio)), f, indent=2
        )
    print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
