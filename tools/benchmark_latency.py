"""End-to-end detector latency on ONNX Runtime, PyTorch or TensorRT, one row per config.

    python tools/benchmark_latency.py CONFIG [CONFIG ...] --backend onnxruntime \
        --shape 320 320 --iters 50 [--cache work_dirs/latency.sqlite] --json OUT

Random weights are used (latency does not depend on them, except through how many boxes
reach NMS: --score-fraction seeds the head as the search's targets do). Each config goes
through the package's latency service (gpunet_mm.deploy.measure_config), so with --cache the
row is stored under the same key the search and benchmarks/benchmark_hub.py use: a config
timed here is found cached there when the target (shape, threads, clock, NMS load) agrees.
See docs/deploy.md.
"""

import argparse
import json
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Detector latency benchmark')
    p.add_argument('configs', nargs='+', help='mmdet config files')
    p.add_argument('--backend', default='onnxruntime', help='onnxruntime, torch or tensorrt')
    p.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'), default=(320, 320))
    p.add_argument('--iters', type=int, default=50)
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--fp16', action='store_true')
    p.add_argument('--device', default='cpu', help='cpu or cuda (onnxruntime/torch)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads (default: all)')
    p.add_argument('--torch-mode', default='eager', help='eager, compile or cudagraph')
    p.add_argument(
        '--score-fraction',
        type=float,
        default=0.0,
        help='NMS load: fraction of (prior, class) pairs seeded above the score threshold '
        '(0: the random head prior; the search targets use 0.002)',
    )
    p.add_argument(
        '--clock', default='wall', help='wall, or cpu (ONNX Runtime on the CPU, --threads 1)'
    )
    p.add_argument('--cache', default=None, help='SQLite latency cache file')
    p.add_argument('--work-dir', default='work_dirs/benchmark_latency')
    p.add_argument('--json', default=None, help='write the rows here')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import gpunet_mm  # noqa: F401
    from gpunet_mm.deploy.cli import BackendUnavailableError, benchmark_configs, format_table

    try:
        rows = benchmark_configs(
            args.configs,
            args.backend,
            args.shape,
            iters=args.iters,
            warmup=args.warmup,
            batch=args.batch,
            precision='fp16' if args.fp16 else 'fp32',
            device=args.device,
            threads=args.threads,
            torch_mode=args.torch_mode,
            score_fraction=args.score_fraction,
            clock=args.clock,
            work_dir=args.work_dir,
            cache=args.cache,
        )
    except (ValueError, FileNotFoundError, BackendUnavailableError) as e:
        sys.exit(f'error: {e}')
    print(format_table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    failed = [r for r in rows if r.get('error')]
    if failed:  # the measured rows are printed and written above
        sys.exit(
            f'error: {len(failed)} of {len(rows)} config(s) failed: '
            + '; '.join(f'{r["path"]}: {r["error"]}' for r in failed)
        )


if __name__ == '__main__':
    main()
