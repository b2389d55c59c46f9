"""Measured hub rows for this machine: every tier's classifier, RetinaNet-GPUNet-<tier>, and
the demo-sized RetinaNet, RTMDet-tiny and YOLOX-s with GPUNet-0.

Classifiers run at their native resolution (the ImageNet classifier of each tier, network
only: input tensor -> logits). Detectors are the shipped COCO configs
(``configs/gpunet_det/retinanet_gpunet-<t>_fpn_1x_coco.py``: FPN 256, 4 head convs, 80
classes) exported end to end (normalisation, network, box decoding, NMS) at one input
shape for all tiers (default 320x320), plus the CPU-sized detectors of the demo searches
(``configs/demo/retinanet_gpunet-0_fpn_demo.py``, ``rtmdet-tiny_gpunet-0_cspnext-pafpn_demo.py``
and ``yolox-s_gpunet-0_pafpn_demo.py``: GPUNet-0, 4 classes, at their 256x256 input; the
real-time family next to RetinaNet, measured side by side in one run). All run on
ONNX Runtime's CPU execution provider at batch 1, through the package's latency service
(``gpunet_mm.deploy.measure_latency``, the detectors via ``benchmark_configs`` as
``tools/benchmark_latency.py`` times them) and a ``LatencyCache``, so a second run re-uses
every measurement, and a detector already timed by ``tools/benchmark_latency.py`` or by a
search on the same target is not timed again.

The rows are hub entries with provenance ``measured`` (tool, date, environment) and go to
``gpunet_mm/hub/data/measured_cpu.jsonl`` (shipped with the package; rows of other devices
in it are kept), or with ``--hub-file`` into a user hub file. Accuracy columns are copied
from ``models/tiers.py`` (the published top-1; detectors carry their backbone's as
``backbone_top1``, since no COCO training happens here). Then regenerate the docs and
metafiles: ``tools/misc/gen_model_zoo.py`` and ``tools/misc/gen_metafiles.py``.

    python benchmarks/benchmark_hub.py [--part cls det] [--tiers 0 d1] [--iters 10] \\
        [--warmup 2] [--threads 1] [--det-shape 320 320] [--cache work_dirs/hub_latency.sqlite] \\
        [--detectors retinanet rtmdet yolox] [--det-sets coco demo]

One ONNX Runtime thread by default: the search configs time their CPU targets with
``threads=1`` (so these rows compare with search results), and a single thread is far less
disturbed by other jobs on a shared machine than a thread pool that synchronises.

Random weights: latency does not depend on them, except through how many boxes reach NMS
(a random RetinaNet's score prior keeps nearly all below the 0.05 threshold, so these are
lower bounds for NMS-heavy images).
"""

from __future__ import annotations

import argparse
import datetime
import os
import os.path as osp
import platform
import time
import warnings
from typing import Any, Dict, List, Sequence

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

TOOL = 'benchmarks/benchmark_hub.py'
DEFAULT_OUT = osp.join(ROOT, 'gpunet_mm', 'hub', 'data', 'measured_cpu.jsonl')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--part', nargs='+', default=['cls', 'det'], choices=('cls', 'det'))
    p.add_argument('--tiers', nargs='+', default=None, help='tiers (0-6 or names); default all')
    p.add_argument('--iters', type=int, default=10, help='timed runs per model')
    p.add_argument('--warmup', type=int, default=2, help='untimed runs per model')
    p.add_argument(
        '--threads',
        type=int,
        default=1,
        help='ORT intra-op threads (default 1, as the search configs latency_target; '
        '0 = all cores)',
    )
    p.add_argument('--det-shape', type=int, nargs=2, default=(320, 320), metavar=('H', 'W'))
    p.add_argument(
        '--detectors',
        nargs='+',
        default=list(DETECTORS),
        choices=list(DETECTORS),
        help='detector families (RTMDet and YOLOX: the demo-sized GPUNet-0 rows only)',
    )
    p.add_argument(
        '--det-sets',
        nargs='+',
        default=['coco', 'demo'],
        choices=('coco', 'demo'),
        help="'coco': RetinaNet-GPUNet-<tier> at --det-shape; 'demo': the demo detectors "
        '(tier 0) at 256x256, side by side',
    )
    p.add_argument('--cache', default=osp.join(ROOT, 'work_dirs', 'hub_latency.sqlite'))
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'benchmark_hub'))
    p.add_argument('--out', default=DEFAULT_OUT, help='JSON Lines file of measured rows')
    p.add_argument('--hub-file', default=None, help='add the rows to this user hub instead')
    return p.parse_args(argv)


def environment(result_env: Dict[str, Any]) -> Dict[str, Any]:
    import onnxruntime

    return dict(
        cpu=result_env.get('cpu'),
        cpu_count=result_env.get('cpu_count'),
        threads=result_env.get('threads'),
        onnxruntime=onnxruntime.__version__,
        torch=torch.__version__,
        python=platform.python_version(),
        platform=result_env.get('platform'),
        # machine load when the row was written: CPU timings on a shared machine depend on it
        load_avg_1m=round(os.getloadavg()[0], 2),
    )


def latency_detail(res) -> Dict[str, Any]:
    return dict(
        p90_ms=round(res.p90_ms, 3),
        mean_ms=round(res.mean_ms, 3),
        min_ms=round(res.min_ms, 3),
        iters=res.iters,
        warmup=res.warmup,
    )


def measure_classifiers(tiers: Sequence[int], args, cache) -> List:
    """ONNX Runtime latency of each tier's 1000-class classifier at its native input, through
    the package's latency service (``measure_latency(task='classification')``)."""
    from gpunet_mm.deploy import LatencyTarget, measure_latency
    from gpunet_mm.hub import HubEntry, Provenance, normalize_device
    from gpunet_mm.hub.configs import classification_config
    from gpunet_mm.hub.shipped import IMAGENET, release_schedule
    from gpunet_mm.models import TIER_SHORT, TIERS

    target = LatencyTarget(threads=args.threads, iters=args.iters, warmup=args.warmup)
    backend = target.make_backend()
    out = []
    for t in tiers:
        arch = TIERS[t]
        t0 = time.perf_counter()
        res, hit = measure_latency(
            arch, None, target, cache, args.work_dir, task='classification', backend=backend
        )
        shape = res.shape
        print(
            f'{arch.name:10s} cls {shape[0]}x{shape[1]}: median {res.median_ms:8.2f} ms '
            f'({"cached" if hit else f"{time.perf_counter() - t0:.0f} s"})'
        )
        meta = arch.meta
        out.append(
            HubEntry(
                name=arch.name,
                task='classification',
                input_shape=shape,
                batch=1,
                device=normalize_device(f'cpu:{res.env["cpu"]}'),
                backend='onnxruntime',
                backend_version=res.env.get('onnxruntime'),
                precision='fp32',
                latency_ms=round(res.median_ms, 3),
                latency_stat=f'median of {res.iters} session.run calls, network only '
                '(input tensor to logits)',
                latency_detail=latency_detail(res),
                metric=meta['top1'],
                metric_name='top1',
                metric_dataset=IMAGENET,
                metric_schedule=release_schedule(t),
                metric_source='paper',
                params=meta['params'],
                flops=meta['flops'],
                tier=arch.name,
                config=classification_config(TIER_SHORT[t]),
                provenance=Provenance(
                    kind='measured',
                    tool=TOOL,
                    date=datetime.date.today().isoformat(),
                    environment=environment(res.env),
                ),
            )
        )
    return out


def detector_counts(config: str, shape) -> Dict[str, int]:
    """Parameters and MACs (network outputs, no post-processing) of a detector config."""
    from mmengine.analysis import FlopAnalyzer

    from gpunet_mm.complexity import TensorMode, count_params
    from gpunet_mm.deploy.export import build_detector

    torch.manual_seed(0)
    model = build_detector(config).eval()

    with torch.no_grad():
        analyzer = FlopAnalyzer(TensorMode(model), (torch.zeros(1, 3, *shape),))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops = int(analyzer.total())
    return dict(params=count_params(model), flops=flops)


#: detector family -> (hub ``detector``, the demo search's detector: row name, config).
#: The demo detectors are CPU-sized (4 classes; RetinaNet: FPN 96, 2 GN head convs;
#: RTMDet-tiny / YOLOX-s: their mmdet necks and heads at the demo widths), at their input.
#: Only RetinaNet has a COCO config per tier (``configs/gpunet_det/``).
DETECTORS = {
    'retinanet': ('RetinaNet-GPUNet-0-demo', 'configs/demo/retinanet_gpunet-0_fpn_demo.py'),
    'rtmdet': (
        'RTMDet-tiny-GPUNet-0-demo',
        'configs/demo/rtmdet-tiny_gpunet-0_cspnext-pafpn_demo.py',
    ),
    'yolox': ('YOLOX-s-GPUNet-0-demo', 'configs/demo/yolox-s_gpunet-0_pafpn_demo.py'),
}
DEMO_SHAPE = (256, 256)


def measure_detectors(tiers: Sequence[int], args) -> List:
    """End-to-end ONNX Runtime latency of RetinaNet-GPUNet-<tier> (shipped COCO configs) and,
    with tier 0, of the demo detectors of ``--detectors`` (one group: side by side)."""
    from gpunet_mm.hub.configs import detection_config
    from gpunet_mm.models import TIER_SHORT, TIERS

    out = []
    if 'retinanet' in args.detectors and 'coco' in args.det_sets:
        jobs = [
            (f'RetinaNet-{TIERS[t].name}', t, 'retinanet', detection_config(TIER_SHORT[t]))
            for t in tiers
        ]
        out += _measure_detector_group(jobs, tuple(args.det_shape), args)
    if 0 in tiers and 'demo' in args.det_sets:
        demos = [(DETECTORS[d][0], 0, d, DETECTORS[d][1]) for d in args.detectors]
        out += _measure_detector_group(demos, DEMO_SHAPE, args)
    return out


def _measure_detector_group(jobs, shape, args) -> List:
    from gpunet_mm.deploy.cli import benchmark_configs
    from gpunet_mm.hub import HubEntry, Provenance, normalize_device
    from gpunet_mm.models import TIERS

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        rows = benchmark_configs(
            [osp.join(ROOT, config) for *_, config in jobs],
            'onnxruntime',
            shape,
            iters=args.iters,
            warmup=args.warmup,
            batch=1,
            precision='fp32',
            device='cpu',
            threads=args.threads,
            work_dir=args.work_dir,
            cache=args.cache,
            progress=False,
        )
    print(f'{len(jobs)} detector(s) measured in {time.perf_counter() - t0:.0f} s')
    out = []
    for (name, t, detector, config), row in zip(jobs, rows):
        if row.get('error'):  # benchmark_configs keeps going; a row that failed is no row
            raise RuntimeError(f'{name} ({config}): {row["error"]}')
        arch = TIERS[t]
        counts = detector_counts(osp.join(ROOT, config), shape)
        print(
            f'{name:28s} det {shape[0]}x{shape[1]}: median '
            f'{row["median_ms"]:8.2f} ms{" (cached)" if row["cached"] else ""}'
        )
        env = row['env']
        out.append(
            HubEntry(
                name=name,
                task='detection',
                detector=detector,
                input_shape=shape,
                batch=1,
                device=normalize_device(f'cpu:{env["cpu"]}'),
                backend='onnxruntime',
                backend_version=env.get('onnxruntime'),
                precision='fp32',
                latency_ms=round(row['median_ms'], 3),
                latency_stat=f'median of {row["iters"]} session.run calls, end to end '
                '(normalisation, network, box decoding, NMS; random weights)',
                latency_detail=dict(
                    p90_ms=round(row['p90_ms'], 3),
                    mean_ms=round(row['mean_ms'], 3),
                    min_ms=round(row['min_ms'], 3),
                    iters=row['iters'],
                    warmup=row['warmup'],
                ),
                backbone_top1=arch.meta['top1'],
                metric_source='no COCO mAP measured; backbone_top1 is the published ImageNet '
                'top-1 of the backbone',
                params=counts['params'],
                flops=counts['flops'],
                tier=arch.name,
                config=config,
                provenance=Provenance(
                    kind='measured',
                    tool=TOOL,
                    date=datetime.date.today().isoformat(),
                    environment=environment(env),
                ),
            )
        )
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    import gpunet_mm  # noqa: F401
    from gpunet_mm.deploy import LatencyCache
    from gpunet_mm.hub import ModelHub, read_entries, write_entries
    from gpunet_mm.models import tier_index

    threads = args.threads or os.cpu_count() or 1  # 0: every core
    args.threads = threads
    torch.set_num_threads(threads)
    tiers = [tier_index(t if not str(t).isdigit() else int(t)) for t in args.tiers or range(7)]
    cache = LatencyCache(args.cache)
    t0 = time.perf_counter()
    rows = []
    if 'cls' in args.part:
        rows += measure_classifiers(tiers, args, cache)
    if 'det' in args.part:
        rows += measure_detectors(tiers, args)
    print(f'{len(rows)} rows in {time.perf_counter() - t0:.0f} s')
    if args.hub_file:
        ModelHub(args.hub_file).add_many(rows, replace=True)
        print(f'added to {args.hub_file}')
        return
    keys = {e.key for e in rows}
    kept = [e for e in read_entries(args.out) if e.key not in keys]
    write_entries(args.out, kept + rows)
    print(f'wrote {args.out} ({len(kept)} rows kept, {len(rows)} new)')


if __name__ == '__main__':
    main()
