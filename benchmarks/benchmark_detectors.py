"""Detector benchmark (CPU): every supported detector family through the whole pipeline.

For each demo detector of :data:`gpunet_mm.deploy.parity.HEAD_DEMOS` (GPUNet-0 backbone):

* builds: the config builds in mmdet;
* trains: a few epochs on generated demo data through the search's own
  ``train_candidate`` (cached in ``--work-dir``: a rerun reuses the checkpoint);
* exports: ``export_onnx`` end to end (backbone to NMS);
* parity: ONNX Runtime vs ``model.predict`` on the trained detector, top detections matched
  by label, boxes within 1e-3 of the image size, scores within 1e-4;
* ORT latency: the end-to-end graph in ONNX Runtime vs PyTorch eager
  (``data_preprocessor`` + ``predict``), bs1, measured in alternating rounds in one
  process so that the ratio survives a shared machine;
* search path: the search accepts the config (``validate_config``) and its latency service
  times a candidate's whole exported detector (``LatencyService``), the step every trial
  takes besides the training above.

    python benchmarks/benchmark_detectors.py [--only RTMDet-tiny,YOLOX-s]

Writes benchmarks/results/detectors_cpu.json; docs/deploy.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def _step(row: dict, name: str, fn):
    """Run one column; a failure is recorded (with its message) and ends the row."""
    if row.get('failed'):
        return None
    t0 = time.perf_counter()
    try:
        out = fn()
        row[name] = True
        return out
    except Exception as e:  # the table records what failed and why
        row[name] = False
        row['failed'] = f'{name}: {type(e).__name__}: {e}'
        row['traceback'] = traceback.format_exc(limit=6)
        return None
    finally:
        row[f'{name}_s'] = round(time.perf_counter() - t0, 2)


def bench(args, on_row=None) -> dict:
    import torch
    from mmengine.config import Config

    from gpunet_mm.datasets import generate_detection_demo
    from gpunet_mm.deploy import build_detector, export_onnx
    from gpunet_mm.deploy.backends import OnnxRuntimeBackend, TorchBackend, time_ort_vs_torch
    from gpunet_mm.deploy.backends.side_by_side import side_by_side_record
    from gpunet_mm.deploy.parity import (
        HEAD_DEMOS,
        demo_trained_detector,
        load_images,
        match_detections,
        torch_predict,
    )
    from gpunet_mm.models.tiers import get_tier
    from gpunet_mm.safe_checkpoint import trusted_checkpoints
    from gpunet_mm.search.api import validate_config
    from gpunet_mm.search.latency_service import LatencyService

    torch.set_num_threads(args.threads)
    data = osp.join(args.work_dir, 'demo_det_64')
    generate_detection_demo(
        data, num_train=64, num_val=8, image_size=args.train_size, seed=5, with_masks=True
    )
    data += '/'
    imgs = sorted(osp.join(data, 'val', f) for f in os.listdir(osp.join(data, 'val')))
    ort_b = OnnxRuntimeBackend(threads=args.threads)
    torch_b = TorchBackend(threads=args.threads)
    names = [n for n in HEAD_DEMOS if not args.only or n in args.only.split(',')]
    if args.only:  # in the order given
        names = sorted(names, key=args.only.split(',').index)

    def one(name: str) -> dict:
        config = osp.join(ROOT, HEAD_DEMOS[name])
        row: dict = dict(detector=name, config=HEAD_DEMOS[name])
        _step(row, 'builds', lambda: build_detector(config))
        trained = _step(
            row,
            'trains',
            lambda: demo_trained_detector(
                config,
                osp.join(args.work_dir, 'trained', name.replace(' ', '_')),
                data,
                epochs=args.epochs,
                size=args.train_size,
                threads=args.threads,
            ),
        )
        model = None
        if trained:
            cfg, ckpt = trained
            with trusted_checkpoints():  # this run's own training wrote it
                model = build_detector(Config(cfg), ckpt)
        s = args.train_size
        onnx_parity = osp.join(args.work_dir, 'onnx', f'{name}_{s}.onnx'.replace(' ', '_'))
        _step(row, 'exports', lambda: export_onnx(model, dict(input_shape=(s, s)), onnx_parity))

        def parity():
            worst = None
            for img in imgs[:4]:
                raw, packed = load_images([img], (s, s))
                ref = torch_predict(model, packed)[0]
                dets, labels = ort_b.session(onnx_parity).run(None, {'input': raw.numpy()})
                m = match_detections(ref, dets[0], labels[0], top_k=20)
                ok = m['recall'] >= 0.95 and m['max_box_diff'] <= 1e-3 * s
                ok = ok and m['max_score_diff'] < 1e-4 and m['num_ref'] >= 5
                if not ok:
                    raise AssertionError(f'{img}: {m}')
                if worst is None or m['max_box_diff'] > worst['max_box_diff']:
                    worst = m
            row['parity_worst'] = worst

        _step(row, 'parity', parity)

        shape = (args.shape, args.shape)
        onnx_lat = osp.join(args.work_dir, 'onnx', f'{name}_{args.shape}.onnx'.replace(' ', '_'))

        def latency():
            export_onnx(model, dict(input_shape=shape), onnx_lat)
            raw, _ = load_images(imgs[:1], shape)
            t = time_ort_vs_torch(
                model, onnx_lat, raw, shape, ort_b, torch_b, args.rounds, args.iters
            )
            for k in ('ort_median_ms', 'torch_predict_median_ms', 'speedup_ort_vs_torch'):
                t[k] = round(t[k], 2)
            row.update(t)

        _step(row, 'ort_latency', latency)

        def search_path():
            scfg = Config.fromfile(
                osp.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py')
            ).to_dict()
            det = Config.fromfile(config).to_dict()
            scfg['model'] = det['model']
            scfg['custom_hooks'] = det.get('custom_hooks', [])
            for key in ('train_dataloader', 'val_dataloader'):
                scfg[key]['dataset']['data_root'] = data
            scfg['val_evaluator']['ann_file'] = data + 'annotations/instances_val.json'
            validate_config(scfg)
            target = dict(scfg['latency_target'], iters=3, warmup=1)
            svc = LatencyService(scfg, target, osp.join(args.work_dir, 'latency.sqlite'), None)
            arch = dict(get_tier('GPUNet-0').to_dict(), resolution=args.train_size)
            row['search_candidate_latency_ms'] = round(svc.measure([arch])[0]['latency_ms'], 2)

        _step(row, 'search_path', search_path)
        print(
            f'{name:12s} '
            + ' '.join(
                f'{k}={row.get(k)}'
                for k in (
                    'builds',
                    'trains',
                    'exports',
                    'parity',
                    'ort_latency',
                    'search_path',
                    'ort_median_ms',
                    'torch_predict_median_ms',
                    'speedup_ort_vs_torch',
                    'failed',
                )
            ),
            flush=True,
        )
        return row

    rows = []
    for name in names:
        rows.append(one(name))
        if on_row is not None:  # write as it goes: a long run keeps what it measured
            on_row(rows)
    return dict(
        side_by_side_record(ort_b, rows, args.rounds, args.iters, args.threads),
        train=dict(epochs=args.epochs, size=args.train_size, images=64, tier='GPUNet-0'),
        latency_shape=[args.shape, args.shape],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    # the slow parity tests (tests/deploy/test_trained_parity.py) train the same detectors on
    # the same data into the same folder: either reuses the other's checkpoints
    ap.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs/test_cache'))
    ap.add_argument('--only', default=None, help='comma-separated detector names')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--train-size', type=int, default=128)
    ap.add_argument('--shape', type=int, default=256, help='latency input side (px)')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--out', default=osp.join(ROOT, 'benchmarks/results/detectors_cpu.json'))
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    old_rows = []
    if args.only and osp.isfile(args.out):  # keep the other detectors' rows
        with open(args.out) as f:
            old_rows = json.load(f).get('rows', [])

    def write(rows, extra=None):
        done = {r['detector'] for r in rows}
        res = dict(extra or {}, rows=[r for r in old_rows if r['detector'] not in done] + rows)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=1)

    res = bench(args, on_row=write)
    write(res.pop('rows'), res)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
