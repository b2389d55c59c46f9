"""Deploy benchmark (CPU): end-to-end ONNX Runtime vs PyTorch predict, export time, predictor.

Two parts, results in benchmarks/results/deploy_*.json and docs/deploy.md:

* ``detectors``: for each demo detector (RetinaNet GPUNet-0 demo, RetinaNet / FCOS GPUNet-2 at
  demo width): export time, parity with ``model.predict`` on demo images, and the latency of
  the end-to-end ONNX model in ONNX Runtime vs PyTorch eager (data_preprocessor + predict),
  measured in alternating rounds in one process so the ratio survives a noisy machine.
* ``predictor``: random GPUNet-like archs in a light RetinaNet, measured on ONNX Runtime CPU
  (backbone+neck+head) through the latency cache; fit the predictor on one set and report
  Kendall tau / relative error on 100 fresh archs, plus the predictor's own time per call.

    .venv/bin/python benchmarks/benchmark_deploy.py [--part detectors|predictor|all]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def bench_detectors(args) -> dict:
    import numpy as np
    import torch

    from gpunet_mm.datasets import generate_detection_demo
    from gpunet_mm.deploy.backends import DetectorPredict, OnnxRuntimeBackend, TorchBackend
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
        ort_t, torch_t = [], []
        pred = DetectorPredict(model)
        for _ in range(args.rounds):
            r = ort_b.measure(
                out,
                shape=shape,
                iters=args.iters,
                warmup=2,
                session=sess,
                inputs={'input': raw.numpy()},
            )
            ort_t.append(r.median_ms)
            r = torch_b.measure(pred, shape=shape, iters=args.iters, warmup=2, inputs=raw)
            torch_t.append(r.median_ms)
        row = dict(
            detector=name,
            shape=list(shape),
            weights='demo checkpoint' if use_ckpt else 'seeded head',
            export_seconds=exp['export_seconds'],
            onnx_nodes=exp['num_nodes'],
            parity=parity,
            ort_median_ms=statistics.median(ort_t),
            torch_predict_median_ms=statistics.median(torch_t),
            ort_rounds_ms=[round(t, 2) for t in ort_t],
            torch_rounds_ms=[round(t, 2) for t in torch_t],
        )
        row['speedup_ort_vs_torch'] = row['torch_predict_median_ms'] / row['ort_median_ms']
        rows.append(row)
        print(
            f'{name:28s} export {row["export_seconds"]:5.1f}s  ORT {row["ort_median_ms"]:7.1f} ms'
            f'  torch {row["torch_predict_median_ms"]:7.1f} ms  x{row["speedup_ort_vs_torch"]:.2f}'
            f'  parity {parity["matched"]}/{parity["compared"]}'
        )
    return dict(
        rows=rows,
        env=ort_b.environment(),
        threads=args.threads,
        rounds=args.rounds,
        iters_per_round=args.iters,
        torch=torch.__version__,
        numpy=np.__version__,
    )


def bench_predictor(args) -> dict:
    from tqdm import tqdm

    from gpunet_mm.deploy.cache import LatencyCache
    from gpunet_mm.deploy.latency import LatencyTarget, measure_arch
    from gpunet_mm.deploy.predictor import FEATURES, LatencyPredictor, evaluate
    from gpunet_mm.deploy.random_archs import sample_random_archs

    cache = LatencyCache(osp.join(args.work_dir, 'latency_cache.sqlite'))
    target = LatencyTarget(threads=args.threads, iters=args.arch_iters, warmup=3)
    fit_archs = sample_random_archs(args.num_fit, seed=100, max_layers=args.max_layers)
    eval_archs = sample_random_archs(args.num_eval, seed=200, max_layers=args.max_layers)
    lat = {}
    t0 = time.perf_counter()
    # interleaved, so that any drift in machine load hits both sets alike (a fit set measured
    # on a busier machine than the eval set once halved tau)
    order = [a for pair in zip(fit_archs, eval_archs) for a in pair]
    order += eval_archs[len(fit_archs) :] + fit_archs[len(eval_archs) :]
    for a in tqdm(order, desc='measure archs'):
        r, _ = measure_arch(a, target, cache=cache)
        lat[a.name] = r.median_ms
    measure_s = time.perf_counter() - t0
    pred = LatencyPredictor(target=dict(backend='onnxruntime', device='cpu', threads=args.threads))
    pred.fit(fit_archs, [lat[a.name] for a in fit_archs])
    fresh = LatencyPredictor(coef=pred.coef)  # no feature cache: time the cold path
    t1 = time.perf_counter()
    p = [fresh.predict(a) for a in eval_archs]
    per_call_us = (time.perf_counter() - t1) / len(eval_archs) * 1e6
    stats = evaluate(p, [lat[a.name] for a in eval_archs])
    pred.save(osp.join(args.work_dir, 'predictor_onnxruntime_cpu.json'))
    print(
        f'predictor: tau {stats["kendall_tau"]:.3f}  mean rel err {stats["mean_rel_error"]:.3f}'
        f'  ({per_call_us:.0f} us / prediction, cold)'
    )
    return dict(
        num_fit=len(fit_archs),
        num_eval=len(eval_archs),
        max_layers=args.max_layers,
        resolutions=[224, 256, 288, 320],
        arch_iters=args.arch_iters,
        fit_stats=pred.fit_stats,
        eval_stats=stats,
        predict_us_cold=per_call_us,
        coef=dict(
            zip(
                FEATURES,
                [float(c) for c in pred.coef],
            )
        ),
        measure_seconds=measure_s,
        cache_hits=cache.hits,
        cache_misses=cache.misses,
        latency_ms_range=[min(lat.values()), max(lat.values())],
        env=target.make_backend().environment(),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--part', choices=('detectors', 'predictor', 'all'), default='all')
    ap.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs/benchmark_deploy'))
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--num-fit', type=int, default=60)
    ap.add_argument('--num-eval', type=int, default=100)
    ap.add_argument('--max-layers', type=int, default=3)
    ap.add_argument('--arch-iters', type=int, default=10)
    ap.add_argument('--out-dir', default=osp.join(ROOT, 'benchmarks/results'))
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    import gpunet_mm  # noqa: F401

    if args.part in ('detectors', 'all'):
        res = bench_detectors(args)
        with open(osp.join(args.out_dir, 'deploy_cpu_detectors.json'), 'w') as f:
            json.dump(res, f, indent=2)
    if args.part in ('predictor', 'all'):
        res = bench_predictor(args)
        with open(osp.join(args.out_dir, 'deploy_cpu_predictor.json'), 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
