"""Time of the built-in demo data sets: first generation and the repeat call that skips.

    python benchmarks/benchmark_demo_data.py [--out benchmarks/results/demo_data_cpu.json]

A repeat call with the same parameters only reads the recorded parameters and checks the
files are there, so it should stay far below a generation; the unit tests check that it
skips and leaves the files untouched, this records how long each takes (CPU timings are
noisy: compare the two figures of one run).
"""

import argparse
import json
import platform
import statistics
import tempfile
import time

from gpunet_mm.datasets import generate_classification_demo, generate_detection_demo


def _time(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=None, help='JSON file for the figures')
    p.add_argument('--repeats', type=int, default=5, help='repeat (skipping) calls timed')
    args = p.parse_args()
    rows = {}
    for name, fn, kwargs in (
        ('detection', generate_detection_demo, dict(num_train=64, num_val=16)),
        ('classification', generate_classification_demo, dict(per_class_train=20)),
    ):
        with tempfile.TemporaryDirectory() as root:
            first, out = _time(fn, root, **kwargs)
            assert not out['skipped']
            again = []
            for _ in range(args.repeats):
                seconds, out = _time(fn, root, **kwargs)
                assert out['skipped'], f'{name}: the repeat call regenerated the data'
                again.append(seconds)
        rows[name] = dict(
            params=kwargs,
            generate_s=round(first, 3),
            skip_median_s=round(statistics.median(again), 4),
            ratio=round(first / statistics.median(again), 1),
        )
        print(
            f'{name:15s} generate {first:6.2f} s   repeat (skips) '
            f'{statistics.median(again) * 1e3:7.1f} ms   x{rows[name]["ratio"]}'
        )
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(rows=rows, python=platform.python_version()), f, indent=1)


if __name__ == '__main__':
    main()
