"""How fast does the refitted pruning predictor learn the search's target? (issue 17, item 7)

Replays recorded end-to-end latencies of demo detectors (ONNX Runtime CPU, one thread, the
whole exported RetinaNet with decoding and NMS; written by
``benchmarks/benchmark_deploy.py --predictor``) the way a search meets them: a calibration
on 4 measured architectures, then proposals one at a time, each predicted *before* its
measurement is observed. Reports the median absolute error of the last 20 predictions after
10, 20 and 30 measurements, for the calibrated proxy alone (what the search used before)
and for :class:`gpunet_mm.deploy.refit.RefitPredictor`, over several measurement orders.

    python benchmarks/benchmark_refit.py [--orders 10] [--proposals 40]
        [--out benchmarks/results/refit_demo.json]
"""

from __future__ import annotations

import argparse
import json
import os.path as osp

import numpy as np

from gpunet_mm.atomic_write import atomic_write_text
from gpunet_mm.deploy import LatencyPredictor
from gpunet_mm.deploy.random_archs import sample_random_archs
from gpunet_mm.deploy.refit import RefitPredictor, grouped_features, replay
from gpunet_mm.nas.latency_proxy import latency_proxy

RECORDED = 'benchmarks/results/deploy_cpu_predictor_retinanet_gpunet-0_fpn_demo_archres_1t_cpu.json'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--recorded', default=RECORDED)
    p.add_argument('--orders', type=int, default=10, help='random measurement orders')
    p.add_argument('--proposals', type=int, default=40)
    p.add_argument('--out', default='benchmarks/results/refit_demo.json')
    args = p.parse_args()
    with open(args.recorded) as f:
        rec = json.load(f)
    measured = {
        m['arch_hash']: float(np.median(m['rounds_ms'])) for m in rec['measurements'].values()
    }
    archs = sample_random_archs(rec['num_fit'], seed=100, max_layers=rec['max_layers'])
    archs += sample_random_archs(rec['num_eval'], seed=200, max_layers=rec['max_layers'])
    archs = [a for a in archs if a.structural_hash() in measured]
    feats = grouped_features(LatencyPredictor.for_target(rec['template'], dict(rec['target'])))
    marks = (10, 20, 30)
    rows = []
    for order in range(args.orders):
        rng = np.random.default_rng(order)
        idx = rng.permutation(len(archs))
        seeds = [archs[i] for i in idx[:4]]
        props = [archs[i] for i in idx[4 : 4 + args.proposals]]
        y0 = [measured[a.structural_hash()] for a in seeds]
        slope, intercept = np.polyfit([latency_proxy(a) for a in seeds], y0, 1)
        if slope <= 0 or intercept < 0:  # as search.api.calibrate
            slope, intercept = (
                float(np.median([y / latency_proxy(a) for a, y in zip(seeds, y0)])),
                0.0,
            )
        truth = [measured[a.structural_hash()] for a in props]
        calib = [abs(intercept + slope * latency_proxy(a) - y) / y for a, y in zip(props, truth)]
        model = RefitPredictor(latency_proxy, float(slope), float(intercept), features=feats)
        for a, y in zip(seeds, y0):
            model.observe(a, y, seed_point=True)
        errs = replay(model, props, truth)
        row = dict(order=order, model=model.model)
        for m in marks:
            if m < len(errs):
                row[f'refit_after_{m}'] = float(np.median(errs[m : m + 20]))
        row['calibrated_proxy'] = float(np.median(calib))
        row['refit_first_10'] = float(np.median(errs[:10]))
        rows.append(row)
    summary = {
        k: float(np.median([r[k] for r in rows if k in r]))
        for k in rows[0]
        if k not in ('order', 'model')
    }
    out = dict(
        what='median absolute relative latency error of the pruning predictor, predicted '
        'before each measurement (median over measurement orders)',
        recorded=args.recorded,
        target=rec['target'],
        num_archs=len(archs),
        orders=args.orders,
        proposals=args.proposals,
        summary=summary,
        rows=rows,
    )
    atomic_write_text(args.out, json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    if not osp.isfile(RECORDED):
        raise SystemExit(f'{RECORDED} not found: run from the repository root')
    main()
