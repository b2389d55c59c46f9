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
import os
import os.path as osp
import sqlite3
import time

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
    p.add_argument('--journal', default=None, help="a search's journal.sqlite (see above)")
    p.add_argument('--rounds', type=int, default=5, help='--journal: re-timing rounds')
    args = p.parse_args()
    if args.journal:
        return from_journal(args)
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


def from_journal(args: argparse.Namespace) -> None:
    """The ``--journal`` mode (module docstring)."""
    from gpunet_mm.models.arch_spec import GPUNetArch
    from gpunet_mm.search.api import base_predictor, latency_model
    from gpunet_mm.search.latency_service import make_target

    con = sqlite3.connect(f'file:{args.journal}?mode=ro', uri=True)
    meta = {k: json.loads(v) for k, v in con.execute('SELECT key, value FROM meta')}
    cfg, calib = meta['config'], meta['calibration']
    rows = con.execute(
        'SELECT id, origin, arch, latency_ms, latency FROM trials '
        'WHERE latency_ms IS NOT NULL ORDER BY id'
    ).fetchall()
    con.close()
    trials = [
        dict(id=i, origin=o, arch=GPUNetArch.from_dict(json.loads(a)), recorded_ms=lat, **_where(j))
        for i, o, a, lat, j in rows
    ]
    missing = [t['id'] for t in trials if not (t['onnx'] and osp.isfile(t['onnx']))]
    if missing:
        raise SystemExit(f'--journal: the exported detectors of trials {missing} are gone')
    target = make_target(cfg['latency_target'])
    backend = target.make_backend()
    sessions = {t['id']: backend.session(t['onnx']) for t in trials}
    rounds: dict = {t['id']: [] for t in trials}
    load = []
    t0 = time.perf_counter()
    for _ in range(args.rounds):  # round-robin: a burst of load hits one round of several
        for t in trials:
            r = backend.measure(
                t['onnx'],
                shape=t['shape'],
                iters=target.iters,
                warmup=target.warmup,
                session=sessions[t['id']],
            )
            rounds[t['id']].append(float(r.median_ms))
        load.append(os.getloadavg()[0])
    for t in trials:
        t['rounds_ms'] = rounds[t['id']]
        t['retimed_ms'] = float(np.median(t['rounds_ms']))

    def replay_against(truth_key: str) -> list:
        """Train on the recorded values as the search did; score each prediction made
        before a proposal's measurement against ``truth_key``."""
        model = latency_model(cfg, base_predictor(cfg, False), calib, False)
        errs = []
        for t in trials:
            proposal = t['origin'].startswith('optimizer')
            if proposal:
                errs.append(abs(model.predict(t['arch']) - t[truth_key]) / t[truth_key])
            model.observe(t['arch'], t['recorded_ms'], not proposal)
        return errs

    def retimed_replay() -> list:
        """Train and score on the re-timed medians: what the predictor would have reported
        had every measurement been the median of the rounds."""
        model = latency_model(cfg, base_predictor(cfg, False), calib, False)
        return [
            model.observe(t['arch'], t['retimed_ms'], not t['origin'].startswith('optimizer'))
            for t in trials
        ]

    props = [t for t in trials if t['origin'].startswith('optimizer')]
    vs_recorded = replay_against('recorded_ms')
    vs_retimed = replay_against('retimed_ms')
    clean = [e for t, e in zip(trials, retimed_replay()) if t['origin'].startswith('optimizer')]
    cv = [float(np.std(t['rounds_ms']) / np.mean(t['rounds_ms'])) for t in trials]
    dev = [abs(t['recorded_ms'] - t['retimed_ms']) / t['retimed_ms'] for t in trials]

    def med(x: list, start: int = 0) -> float:
        return round(float(np.median(x[start:])), 4) if len(x) > start else None

    summary = dict(
        proposals=len(props),
        recorded_error=med(vs_recorded),
        recorded_error_after_10=med(vs_recorded, 10),
        error_vs_retimed=med(vs_retimed),
        error_vs_retimed_after_10=med(vs_retimed, 10),
        retimed_replay_error=med(clean),
        retimed_replay_error_after_10=med(clean, 10),
        rounds_cv_median=med(cv),
        rounds_cv_max=round(max(cv), 4),
        recorded_vs_retimed_median=med(dev),
        recorded_vs_retimed_max=round(max(dev), 4),
    )
    out = dict(
        what="a search's latency-predictor error taken apart: the measurements' noise floor "
        '(re-timed rounds of its own exported detectors) and the error against recorded and '
        're-timed values',
        journal=osp.abspath(args.journal),
        target=cfg['latency_target'],
        rounds=args.rounds,
        load_average=load,
        wall_s=round(time.perf_counter() - t0, 1),
        summary=summary,
        trials=[
            dict(
                id=t['id'],
                origin=t['origin'],
                recorded_ms=round(t['recorded_ms'], 4),
                rounds_ms=[round(x, 4) for x in t['rounds_ms']],
            )
            for t in trials
        ],
    )
    atomic_write_text(args.out, json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


def _where(latency_json: str) -> dict:
    j = json.loads(latency_json or '{}')
    return dict(onnx=(j.get('env') or {}).get('onnx'), shape=tuple(j.get('shape') or (0, 0)))


if __name__ == '__main__':
    if not osp.isfile(RECORDED):
        raise SystemExit(f'{RECORDED} not found: run from the repository root')
    main()
