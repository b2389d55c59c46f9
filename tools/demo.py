"""The README's main job: RetinaNet + GPUNet-0 trained, interrupted, resumed and evaluated
on the built-in demo data, on whatever machine this is (a CPU is enough).

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs 12] [--stop-at 6]

Phase 0 evaluates the untrained detector (the "random detector" baseline), phase 1 trains
until ``--stop-at`` epochs (as if the job were killed), phase 2 resumes from the last
checkpoint and finishes the schedule, phase 3 evaluates the final checkpoint on the demo
val split with the COCO metric and draws its predictions on 8 val images. A summary lands in
``<work-dir>/demo_summary.json``.
"""

import argparse
import json
import os
import time

from gpunet_mm.apis import load_config, make_runner, set_cpu_threads
from gpunet_mm.datasets import generate_detection_demo
from gpunet_mm.visualization import prediction_grid

CONFIG = 'configs/demo/retinanet_gpunet-0_fpn_demo.py'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo_det')
    parser.add_argument('--epochs', type=int, default=None, help='defaults to the config')
    parser.add_argument(
        '--stop-at', type=int, default=None, help='epoch after which phase 1 stops (default: half)'
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU threads (default: one per core left after the data-loader worker, 1 on 2 '
        'cores; see docs/install.md)',
    )
    args = parser.parse_args()

    t0 = time.time()
    info = generate_detection_demo(args.data_root)
    print(f'[demo] data: {args.data_root} ({info})', flush=True)
    cfg = load_config(args.config, args.work_dir)
    threads = set_cpu_threads(cfg, args.threads)
    print(f'[demo] CPU threads: {threads or "torch default"}', flush=True)
    epochs = args.epochs or cfg.train_cfg.max_epochs
    stop_at = args.stop_at or max(1, epochs // 2)
    if not 1 <= stop_at < epochs:
        raise ValueError(f'--stop-at: got {stop_at}; allowed: 1..{epochs - 1}')

    cfg.experiment_name = 'phase0_untrained'
    print('[demo] phase 0: evaluate the untrained detector (baseline)', flush=True)
    baseline = make_runner(cfg).test()

    t1 = time.time()
    cfg = load_config(args.config, args.work_dir)
    cfg.train_cfg.max_epochs = stop_at
    cfg.experiment_name = 'phase1_train'
    print(f'[demo] phase 1: train epochs 1..{stop_at} of {epochs}', flush=True)
    make_runner(cfg).train()

    cfg = load_config(args.config, args.work_dir)
    cfg.train_cfg.max_epochs = epochs
    cfg.resume, cfg.load_from = True, None  # latest checkpoint in work_dir
    cfg.experiment_name = 'phase2_resume'
    print(f'[demo] phase 2: resume from epoch {stop_at}, train to {epochs}', flush=True)
    runner = make_runner(cfg)
    runner.train()
    t2 = time.time()

    ckpt = os.path.join(args.work_dir, f'epoch_{epochs}.pth')
    cfg = load_config(args.config, args.work_dir)
    cfg.load_from = ckpt
    cfg.experiment_name = 'phase3_test'
    print(f'[demo] phase 3: evaluate {ckpt}', flush=True)
    metrics = make_runner(cfg).test()
    t3 = time.time()

    val_dir = os.path.join(args.data_root, 'val')
    images = sorted(os.path.join(val_dir, f) for f in os.listdir(val_dir))[:8]
    grid = prediction_grid(
        args.config, ckpt, images, os.path.join(args.work_dir, 'val_predictions.png')
    )
    print(f'[demo] predictions on 8 val images drawn in {grid}', flush=True)

    summary = dict(
        config=args.config,
        checkpoint=ckpt,
        epochs=epochs,
        resumed_from=stop_at,
        bbox_mAP=metrics.get('coco/bbox_mAP'),
        bbox_mAP_50=metrics.get('coco/bbox_mAP_50'),
        untrained_bbox_mAP=baseline.get('coco/bbox_mAP', 0.0),  # no boxes -> 0
        data_s=round(t1 - t0, 1),
        train_s=round(t2 - t1, 1),
        test_s=round(t3 - t2, 1),
        total_s=round(t3 - t0, 1),
    )
    with open(os.path.join(args.work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('[demo] summary: ' + json.dumps(summary), flush=True)


if __name__ == '__main__':
    main()
