"""Deploy benchmark (CPU): end-to-end ONNX Runtime vs PyTorch predict, export time, predictor.

Two parts, results in benchmarks/results/deploy_*.json and docs/deploy.md:

* ``detectors``: for each demo detector (RetinaNet GPUNet-0 demo, RetinaNet / FCOS GPUNet-2 at
  demo width): export time, parity with ``model.predict`` on demo images, and the latency of
  the end-to-end ONNX model in ONNX Runtime vs PyTorch eager (data_preprocessor + predict),
  measured in alternating rounds in one process so the ratio survives a noisy machine.
* ``predictor``: random GPUNet-like archs (``random_archs``) dropped into a detector template
  (default: the demo RetinaNet at 256x256, the demo search's target), each exported end to
  end (decoding and NMS included) and timed on ONNX Runtime CPU with one thread and the
  process CPU clock, the fit and held-out sets interleaved over several rounds; the
  predictor is fitted on ``--num-fit`` archs and scored on ``--num-eval`` held-out ones
  (share within +-10 %, Kendall tau, mean/median error), with the noise floor of repeated
  measurements of the same arch. Writes the fitted predictor (for the demo target:
  gpunet_mm/deploy/data/predictor_demo_ort_cpu.json) and fills the latency cache.

    .venv/bin/python benchmarks/benchmark_deploy.py [--part detectors|predictor|all]

The predictor part exports ~200 archs once (cached in WORK_DIR; a run stops after
``--max-export-minutes`` and the next one continues), then measures in about 6 minutes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def bench_detectors(args) -> dict:
    import torch

    from gpunet_mm.datasets import generate_detection_demo
    from gpunet_mm.deploy.backends import OnnxRuntimeBackend, TorchBackend, time_ort_vs_torch
    from gpunet_mm.deploy.backends.side_by_side import side_by_side_record
    from gpunet_mm.deploy.export import build_detector, export_onnx
    from gpunet_mm.deploy.parity import (
        DEMO_DETECTORS,
        load_images,
        match_detections,
        seed_head,
        torch_predict,
    )

    torch.set_num_threads(args.threads)
    generate_detection_demo(osp.join(ROOT, 'data/demo_det'))
    imgs = sorted(glob.glob(osp.join(ROOT, 'data/demo_det/val/*.jpg')))[:2]
    ckpt = osp.join(ROOT, 'work_dirs/demo/best_coco_bbox_mAP_epoch_12.pth')
    ort_b = OnnxRuntimeBackend(threads=args.threads)
    torch_b = TorchBackend(threads=args.threads)
    rows = []
    for name, (cfg, opts) in DEMO_DETECTORS.items():
        shape = (256, 256) if 'demo' in name else (320, 320)
        use_ckpt = 'demo' in name and osp.isfile(ckpt)
        torch.manual_seed(0)
        model = build_detector(osp.join(ROOT, cfg), ckpt if use_ckpt else None, opts)
        raw, packed = load_images(imgs[:1], shape)
        if not use_ckpt:
            # a trained detector sends tens to hundreds of candidates to NMS; calibrate the
            # seeded head to ~0.2% of (prior, class) pairs above the 0.05 score threshold so
            # that NMS load (which dominates PyTorch's CPU predict) is realistic
            seed_head(
                model, model.data_preprocessor(packed, False)['inputs'], fraction=0.002, score=0.05
            )
        ref = torch_predict(model, packed)
        out = osp.join(args.work_dir, f'{name}.onnx')
        exp = export_onnx(model, dict(input_shape=shape), out)
        sess = ort_b.session(out)
        dets, labels = sess.run(None, {'input': raw.numpy()})
        parity = match_detections(ref[0], dets[0], labels[0], top_k=50)
        parity['candidates_note'] = 'top-50 of predict(rescale=False) matched by label/IoU'
        row = dict(
            detector=name,
            shape=list(shape),
            weights='demo checkpoint' if use_ckpt else 'seeded head',
            export_seconds=exp['export_seconds'],
            onnx_nodes=exp['num_nodes'],
            parity=parity,
            **time_ort_vs_torch(
                model, out, raw, shape, ort_b, torch_b, args.rounds, args.iters, session=sess
            ),
        )
        rows.append(row)
        print(
            f'{name:28s} export {row["export_seconds"]:5.1f}s  ORT {row["ort_median_ms"]:7.1f} ms'
            f'  torch {row["torch_predict_median_ms"]:7.1f} ms  x{row["speedup_ort_vs_torch"]:.2f}'
            f'  parity {parity["matched"]}/{parity["compared"]}'
        )
    return side_by_side_record(ort_b, rows, args.rounds, args.iters, args.threads)


def _interleave(a: list, b: list) -> list:
    """a0 b0 a1 b1 ...: drift in machine load hits both sets alike."""
    out = [x for pair in zip(a, b) for x in pair]
    return out + a[len(b) :] + b[len(a) :]


DEMO_TARGET = ('configs/demo/retinanet_gpunet-0_fpn_demo.py', 256, 1, 'cpu')


def is_demo_target(args) -> bool:
    """The demo search's target: its predictor and results have fixed names."""
    return (args.template, args.shape, args.threads, args.clock) == DEMO_TARGET


def predictor_tag(args) -> str:
    shape = args.shape or 'archres'
    return f'{osp.splitext(osp.basename(args.template))[0]}_{shape}_{args.threads}t_{args.clock}'


def bench_predictor(args) -> dict:
    """Whole-detector latency predictor vs held-out measurements (see the module docstring).

    Phase 1 exports every arch once (ONNX files cached in WORK_DIR/onnx_<target>, so a run
    cut by --max-export-minutes resumes). Phase 2 times them in ``--arch-rounds`` rounds, each
    round walking the interleaved fit/held-out list (odd rounds backwards, so a slow drift
    cancels), with a reference arch (GPUNet-0) timed every ``--ref-every`` archs to show the
    drift and the noise floor of one architecture. An arch's latency is the median of its
    per-round medians; the noise floor compares each round with the others.
    """
    import numpy as np
    from tqdm import tqdm

    from gpunet_mm.deploy.backends.base import LatencyResult
    from gpunet_mm.deploy.cache import LatencyCache
    from gpunet_mm.deploy.latency import (
        LatencyTarget,
        export_detector,
        latency_key,
        resolve_template,
        template_hash,
        time_onnx,
    )
    from gpunet_mm.deploy.predictor import (
        CHANNEL_BLOCKS,
        DEMO_PREDICTOR,
        FEATURES,
        LatencyPredictor,
        evaluate,
    )
    from gpunet_mm.deploy.random_archs import sample_random_archs
    from gpunet_mm.models.tiers import get_tier

    template_path = osp.join(ROOT, args.template)
    template = resolve_template(template_path)
    target = LatencyTarget(
        backend='onnxruntime',
        device='cpu',
        threads=args.threads,
        shape=(args.shape, args.shape) if args.shape else None,  # 0: each arch's resolution
        iters=args.arch_iters,
        warmup=args.arch_warmup,
        clock=args.clock,
    )
    fit_archs = sample_random_archs(args.num_fit, seed=100, max_layers=args.max_layers)
    eval_archs = sample_random_archs(args.num_eval, seed=200, max_layers=args.max_layers)
    ref = get_tier('GPUNet-0')
    order = _interleave(fit_archs, eval_archs)
    backend = target.make_backend()
    tag = predictor_tag(args)
    onnx_dir = osp.join(args.work_dir, f'onnx_{tag}')
    os.makedirs(onnx_dir, exist_ok=True)
    keys = {a.name: latency_key(a, template, target, backend) for a in order + [ref]}
    paths = {n: osp.join(onnx_dir, f'{k.digest()}.onnx') for n, k in keys.items()}

    # phase 1: export once per arch (cached on disk)
    t0 = time.perf_counter()
    todo = [a for a in [ref] + order if not osp.isfile(paths[a.name])]
    for a in tqdm(todo, desc='export'):
        if time.perf_counter() - t0 > args.max_export_minutes * 60:
            left = sum(not osp.isfile(paths[b.name]) for b in order)
            sys.exit(
                f'export stopped after {args.max_export_minutes} min with {left} archs left; '
                'run the same command again to continue (exports are cached)'
            )
        export_detector(a, template, target, paths[a.name])
    export_s = time.perf_counter() - t0

    # phase 2: timed rounds
    t1 = time.perf_counter()
    rounds = {a.name: [] for a in order}
    wall = {a.name: [] for a in order}
    ref_series = []
    step = 0
    for r in range(args.arch_rounds):
        seq = order if r % 2 == 0 else order[::-1]
        for a in tqdm(seq, desc=f'round {r + 1}/{args.arch_rounds}'):
            if step % args.ref_every == 0:
                res = time_onnx(paths[ref.name], target, target.shape_for(ref), backend=backend)
                ref_series.append(round(res.median_ms, 3))
            step += 1
            res = time_onnx(paths[a.name], target, target.shape_for(a), backend=backend)
            rounds[a.name].append(res.median_ms)
            wall[a.name].append(res.env.get('wall_median_ms', res.median_ms))
    measure_s = time.perf_counter() - t1
    lat = {n: float(np.median(v)) for n, v in rounds.items()}

    # every figure goes into the latency cache: fit_from_cache can rebuild the predictor
    cache = LatencyCache(osp.join(args.work_dir, 'latency_cache.sqlite'))
    env = backend.environment()
    for a in order:
        res = LatencyResult.from_times(
            rounds[a.name],
            backend='onnxruntime',
            warmup=target.warmup,
            precision=target.precision,
            batch=target.batch,
            shape=target.shape_for(a),
            env=dict(
                env,
                clock='process_cpu' if target.clock == 'cpu' else 'wall',
                post_processing=True,
                arch=a.to_dict(),
                rounds=args.arch_rounds,
                iters_per_round=target.iters,
            ),
        )
        cache.put(keys[a.name], res)

    y_fit = [lat[a.name] for a in fit_archs]
    y = [lat[a.name] for a in eval_archs]
    blocks = CHANNEL_BLOCKS
    # ablation: the held-out figure for each channel block (the fit picks one on its own)
    by_block = {
        b: evaluate(
            LatencyPredictor(target=target.to_dict(), template=template, channel_block=b)
            .fit(fit_archs, y_fit)
            .predict_many(eval_archs),
            y,
        )
        for b in blocks
    }
    pred = LatencyPredictor(target=target.to_dict(), template=template)
    pred.fit(fit_archs, y_fit, channel_blocks=blocks)
    fresh = LatencyPredictor(
        coef=pred.coef, target=pred.target, template=template, channel_block=pred.channel_block
    )
    t2 = time.perf_counter()
    p = [fresh.predict(a) for a in eval_archs]
    per_call_us = (time.perf_counter() - t2) / len(eval_archs) * 1e6
    stats = evaluate(p, y)

    # noise floor: each round against the median of the other rounds (same arch)
    loo = []
    for v in rounds.values():
        for i, m in enumerate(v):
            others = v[:i] + v[i + 1 :]
            if others:
                loo.append(abs(m - np.median(others)) / np.median(others))
    loo = np.asarray(loo)
    single = [
        abs(pi - m) / m for pi, a in zip(p, eval_archs) for m in rounds[a.name]
    ]  # the predictor against single-round measurements
    single = np.asarray(single)
    wall_ratio = [np.median(wall[n]) / lat[n] for n in lat]
    ref_arr = np.asarray(ref_series)
    noise = dict(
        round_vs_other_rounds_within_10pct=float(np.mean(loo <= 0.10)) if len(loo) else None,
        round_vs_other_rounds_mean_rel=float(loo.mean()) if len(loo) else None,
        round_vs_other_rounds_p95_rel=float(np.percentile(loo, 95)) if len(loo) else None,
        predictor_vs_single_rounds_within_10pct=float(np.mean(single <= 0.10)),
        predictor_vs_single_rounds_mean_rel=float(single.mean()),
        reference_arch=ref.name,
        reference_ms=ref_series,
        reference_rel_spread=dict(
            within_10pct_of_median=float(np.mean(np.abs(ref_arr / np.median(ref_arr) - 1) <= 0.1)),
            max_rel=float(np.max(np.abs(ref_arr / np.median(ref_arr) - 1))),
            p5_p95=[float(np.percentile(ref_arr, 5)), float(np.percentile(ref_arr, 95))],
        ),
        wall_over_cpu_median=float(np.median(wall_ratio)),
        wall_over_cpu_max=float(np.max(wall_ratio)),
    )
    pred.fit_stats['heldout'] = stats
    out_pred = args.save_predictor or (
        DEMO_PREDICTOR if is_demo_target(args) else osp.join(args.work_dir, f'predictor_{tag}.json')
    )
    pred.save(out_pred)
    print(
        f'held-out ({len(y)}): within +-10% {stats["within_10pct"]:.0%}  tau '
        f'{stats["kendall_tau"]:.3f}  mean rel err {stats["mean_rel_error"]:.3f}  median '
        f'{stats["median_rel_error"]:.3f}  ({per_call_us:.0f} us / prediction, cold)\n'
        f'noise floor: a round within +-10% of the other rounds '
        f'{noise["round_vs_other_rounds_within_10pct"]}; reference {ref.name} '
        f'{noise["reference_rel_spread"]}\npredictor saved to {out_pred}'
    )
    return dict(
        what='whole exported detector (normalise, backbone, neck, head, decode, NMS)',
        template=args.template,
        template_hash=template_hash(template),
        target=target.to_dict(),
        num_fit=len(fit_archs),
        num_eval=len(eval_archs),
        max_layers=args.max_layers,
        rounds=args.arch_rounds,
        fit_stats={k: v for k, v in pred.fit_stats.items() if k != 'heldout'},
        eval_stats=stats,
        channel_block=pred.channel_block,
        eval_stats_by_channel_block={str(b): v for b, v in by_block.items()},
        noise_floor=noise,
        predict_us_cold=per_call_us,
        export_seconds=export_s,
        measure_seconds=measure_s,
        latency_ms_range=[min(lat.values()), max(lat.values())],
        predictor_file=osp.relpath(out_pred, ROOT),
        predictor=pred.to_dict(),
        coef=dict(zip(FEATURES, [float(c) for c in pred.coef])),
        measurements={
            a.name: dict(
                fit=a in fit_archs,
                arch_hash=a.structural_hash(),
                rounds_ms=[round(v, 3) for v in rounds[a.name]],
            )
            for a in order
        },
        env=env,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--part', choices=('detectors', 'predictor', 'all'), default='all')
    ap.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs/benchmark_deploy'))
    ap.add_argument(
        '--threads',
        type=int,
        default=None,
        help='intra-op threads (default: all cores for detectors, 1 for predictor)',
    )
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument(
        '--template',
        default='configs/demo/retinanet_gpunet-0_fpn_demo.py',
        help='predictor part: detector template (relative to the repo root)',
    )
    ap.add_argument(
        '--shape',
        type=int,
        default=256,
        help='predictor part: input size (0: each arch at its own resolution)',
    )
    ap.add_argument(
        '--clock',
        choices=('cpu', 'wall'),
        default='cpu',
        help='predictor part: process CPU time (shared machine) or wall time',
    )
    ap.add_argument('--num-fit', type=int, default=100)
    ap.add_argument('--num-eval', type=int, default=100)
    ap.add_argument('--max-layers', type=int, default=3)
    ap.add_argument('--arch-iters', type=int, default=4)
    ap.add_argument('--arch-warmup', type=int, default=2)
    ap.add_argument('--arch-rounds', type=int, default=3)
    ap.add_argument('--ref-every', type=int, default=10)
    ap.add_argument('--max-export-minutes', type=float, default=9.0)
    ap.add_argument(
        '--save-predictor',
        default=None,
        help='where the fitted predictor goes (default: the demo predictor file '
        'for the demo target, else WORK_DIR/predictor_<target>.json)',
    )
    ap.add_argument('--out-dir', default=osp.join(ROOT, 'benchmarks/results'))
    args = ap.parse_args()
    # both folders exist before anything is measured: a run must not fail at its last step
    os.makedirs(args.work_dir, exist_ok=True)
    os.makedirs(args.out_dir, exist_ok=True)
    import gpunet_mm  # noqa: F401

    threads = args.threads
    if args.part in ('detectors', 'all'):
        args.threads = threads or os.cpu_count()
        res = bench_detectors(args)
        with open(osp.join(args.out_dir, 'deploy_cpu_detectors.json'), 'w') as f:
            json.dump(res, f, indent=2)
    if args.part in ('predictor', 'all'):
        args.threads = threads or 1
        res = bench_predictor(args)
        name = 'deploy_cpu_predictor'
        if not is_demo_target(args):
            name += '_' + predictor_tag(args)
        with open(osp.join(args.out_dir, f'{name}.json'), 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
