"""Render the built-in demo data (no download): ``<out>/demo_det`` and ``<out>/demo_cls``.

    python tools/misc/make_demo_data.py                      # defaults, into data/
    python tools/misc/make_demo_data.py --det-train 64 --det-val 16 --size 128 --seed 1
    python tools/misc/make_demo_data.py --force --preview docs/figures/demo_det_samples.png

An up-to-date set (same generator version and parameters) is left alone unless --force.
The logic lives in gpunet_mm.datasets.demo_data; see docs/demo_data.md.
"""

from __future__ import annotations

import argparse
import os
import time

from gpunet_mm.datasets import (
    generate_classification_demo,
    generate_detection_demo,
    render_preview,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data', help='parent folder (default: data)')
    parser.add_argument('--det-train', type=int, default=None, help='detection train images')
    parser.add_argument('--det-val', type=int, default=None, help='detection val images')
    parser.add_argument('--size', type=int, default=None, help='detection image side (px)')
    parser.add_argument('--cls-train', type=int, default=None, help='classification train/class')
    parser.add_argument('--cls-val', type=int, default=None, help='classification val/class')
    parser.add_argument('--cls-size', type=int, default=None, help='classification side (px)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-det', action='store_true', help='only the classification set')
    parser.add_argument('--skip-cls', action='store_true', help='only the detection set')
    parser.add_argument('--force', action='store_true', help='regenerate even if up to date')
    parser.add_argument('--preview', default=None, help='also write a PNG grid of train images')
    return parser.parse_args()


def given(**kwargs: int | None) -> dict[str, int]:
    """Only the options the user set, so the package's defaults stay the single source."""
    return {k: v for k, v in kwargs.items() if v is not None}


def report(kind: str, info: dict) -> None:
    state = 'up to date, skipped' if info['skipped'] else f'written in {info["seconds"]:.1f}s'
    counts = ', '.join(
        f'{k}={info[k]}'
        for k in ('num_train', 'num_val', 'instances_train', 'instances_val')
        if k in info
    )
    print(
        f'[{kind}] {info["out_dir"]}: {state}; {counts}; {info["image_size"]}px; '
        f'classes={",".join(info["classes"])}',
        flush=True,
    )


def main() -> None:
    args = parse_args()
    t0 = time.time()
    det_dir = os.path.join(args.out, 'demo_det')
    if not args.skip_det:
        info = generate_detection_demo(
            det_dir,
            seed=args.seed,
            force=args.force,
            **given(num_train=args.det_train, num_val=args.det_val, image_size=args.size),
        )
        report('det', info)
    if not args.skip_cls:
        info = generate_classification_demo(
            os.path.join(args.out, 'demo_cls'),
            seed=args.seed,
            force=args.force,
            **given(
                per_class_train=args.cls_train,
                per_class_val=args.cls_val,
                image_size=args.cls_size,
            ),
        )
        report('cls', info)
    if args.preview:
        print(f'[preview] {render_preview(det_dir, args.preview)}')
    print(f'[done] {time.time() - t0:.1f}s')


if __name__ == '__main__':
    main()
