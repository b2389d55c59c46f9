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

``--journal`` takes one search's error apart (its detectors re-timed in rounds); see
``from_journal``. ``--journals`` replays several searches' measurements through the refit
variants, with no lookahead (each proposal predicted from what was measured before it),
against the values they recorded and against their detectors re-timed together: which
model and anchoring the demo should use, and how much of the error is timing noise. See
``from_journals`` and docs/search_fidelity.md.

    python benchmarks/benchmark_refit.py --journals WORK_DIR [WORK_DIR ...] \
        [--rounds 5 | --retimed benchmarks/results/refit_demo_journals.json] \
        --out benchmarks/results/refit_demo_journals.json
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
from gpunet_mm.deploy.predictor import CHANNEL_BLOCKS, DEMO_PREDICTOR
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
    p.add_argument('--rounds', type=int, default=5, help='--journal(s): re-timing rounds')
    p.add_argument('--journals', nargs='+', default=None, help='search work dirs (see above)')
    p.add_argument(
        '--retimed', default=None, help="--journals: an earlier run's JSON: its re-timing rounds"
    )
    args = p.parse_args()
    if args.journals:
        return from_journals(args)
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


# ---------------------------------------------------------------------- --journals
#: the replayed variants: (name, base, ``predictor`` settings of the search config). Base
#: ``proxy``: the analytic proxy with the in-run features model (as shipped before);
#: ``demo``: the committed demo predictor; ``others``: a predictor fitted on the re-timed
#: detectors of the *other* journals (none of the replayed run's).
METHODS = (
    ('features or ratio, proxy (before)', 'proxy', {}),
    ('ratio, proxy', 'proxy', dict(models=['anchor'])),
    ('features, proxy', 'proxy', dict(models=['features'])),
    ('before + recent median ratio (3)', 'proxy', dict(rescale=3)),
    ('before + recent median ratio (5)', 'proxy', dict(rescale=5)),
    ('before + recent median ratio (8)', 'proxy', dict(rescale=8)),
    ('before, weights halving every 4', 'proxy', dict(halflife=4.0)),
    ('before, weights halving every 8', 'proxy', dict(halflife=8.0)),
    ('ratio, demo predictor (new default)', 'demo', dict(models=['anchor'])),
    ('features or ratio, demo predictor', 'demo', {}),
    ('ratio, demo predictor + recent median ratio (3)', 'demo', dict(models=['anchor'], rescale=3)),
    ('ratio, demo predictor + recent median ratio (5)', 'demo', dict(models=['anchor'], rescale=5)),
    (
        'ratio, demo predictor, weights halving every 4',
        'demo',
        dict(models=['anchor'], halflife=4.0),
    ),
    ('ratio, predictor fitted on the other journals', 'others', dict(models=['anchor'])),
)


def _journal_run(work_dir: str) -> dict:
    """A search's measurements in the order the search observed them: the calibration
    points (seeds), then each trial's ``measured`` event; with the exported file of each
    (its name: the latency key's digest, the same detector in every search)."""
    from gpunet_mm.models.arch_spec import GPUNetArch

    con = sqlite3.connect(f'file:{work_dir}/journal.sqlite?mode=ro', uri=True)
    meta = {k: json.loads(v) for k, v in con.execute('SELECT key, value FROM meta')}
    cache = sqlite3.connect(f'file:{work_dir}/latency_cache.sqlite?mode=ro', uri=True)
    by_ms = {}
    for med, res in cache.execute('SELECT median_ms, result FROM latency'):
        env = json.loads(res)['env']
        by_ms[round(med, 6)] = osp.basename(env.get('onnx') or '')
    seeds = [
        dict(
            arch=GPUNetArch.from_dict(p['arch']),
            y=p['measured_ms'],
            onnx=by_ms.get(round(p['measured_ms'], 6)),
            proposal=False,
        )
        for p in meta['calibration']['points']
    ]
    arch = {i: json.loads(a) for i, a in con.execute('SELECT id, arch FROM trials')}
    origin = dict(con.execute('SELECT id, origin FROM trials'))
    trials = []
    for t, tid, data in con.execute(
        "SELECT t, trial_id, data FROM events WHERE kind = 'measured' ORDER BY seq"
    ):
        lat = json.loads(json.loads(data)['latency'])
        env = lat.get('env') or {}
        trials.append(
            dict(
                id=tid,
                arch=GPUNetArch.from_dict(arch[tid]),
                y=lat['latency_ms'],
                first=(lat.get('rounds_ms') or [lat['latency_ms']])[0],
                unscaled=env.get('unscaled_ms'),
                onnx=osp.basename(env.get('onnx') or ''),
                proposal=origin[tid].startswith('optimizer'),
                cached=bool(lat.get('cached')),
                t=t,
            )
        )
    con.close()
    window, last = 0, None
    for x in trials:  # one timing window: measurements less than 15 s apart
        window += last is not None and x['t'] - last > 15
        x['window'], last = window, x['t']
    return dict(work_dir=work_dir, cfg=meta['config'], seeds=seeds, trials=trials)


def _retime(runs: list, rounds: int) -> dict:
    """Every distinct exported detector of the runs, timed round-robin in ``rounds`` rounds
    on the runs' target, each round with a fresh session as the search times."""
    from gpunet_mm.deploy.latency import time_onnx
    from gpunet_mm.search.latency_service import make_target

    files = {}
    for r in runs:
        for x in r['seeds'] + r['trials']:
            path = osp.join(r['work_dir'], 'onnx', x['onnx'] or '')
            if x['onnx'] and osp.isfile(path):
                files.setdefault(x['onnx'], (path, (x['arch'].resolution,) * 2))
    target = make_target(runs[0]['cfg']['latency_target'])
    backend = target.make_backend()
    got: dict = {k: [] for k in files}
    load, t0 = [], time.perf_counter()
    for _ in range(rounds):
        for k, (path, shape) in files.items():
            got[k].append(
                round(float(time_onnx(path, target, shape, backend=backend).median_ms), 4)
            )
        load.append(round(os.getloadavg()[0], 2))
    return dict(rounds_ms=got, load_average=load, wall_s=round(time.perf_counter() - t0, 1))


def _replay_run(run: dict, method: tuple, value, quiet: dict, others: dict) -> list:
    """(measurements before, error) of each proposal: predicted from the measurements made
    before it (``value`` of each), scored against its own ``value``."""
    from gpunet_mm.deploy import LatencyPredictor
    from gpunet_mm.deploy.refit import RefitPredictor
    from gpunet_mm.search.api import base_predictor, calibration_fit, latency_model

    _, kind, refit = method
    cfg = dict(run['cfg'])
    cfg['predictor'] = dict(
        path=DEMO_PREDICTOR if kind == 'demo' else None, refit=dict(refit) or None
    )
    base = base_predictor(cfg, False)
    if kind == 'others':
        mine = {x['onnx'] for x in run['seeds'] + run['trials']}
        fit = [(a, quiet[k]) for k, a in others.items() if k not in mine]
        pred = LatencyPredictor.for_target(dict(cfg['model']), dict(cfg['latency_target']))
        pred.fit([a for a, _ in fit], [y for _, y in fit], channel_blocks=CHANNEL_BLOCKS)
        base = pred.predict
    ys = [value(s) for s in run['seeds']]
    slope, intercept = calibration_fit([base(s['arch']) for s in run['seeds']], ys)
    calib = dict(
        slope=slope,
        intercept=intercept,
        points=[dict(arch=s['arch'].to_dict(), measured_ms=y) for s, y in zip(run['seeds'], ys)],
    )
    if kind == 'others':
        model = RefitPredictor(base, slope, intercept, **refit)
        for s, y in zip(run['seeds'], ys):
            model.observe(s['arch'], y, seed_point=True)
    else:
        model = latency_model(cfg, base, calib, False)
    out = []
    for x in run['trials']:
        y = value(x)
        if x['proposal']:
            out.append((len(model._y), abs(model.predict(x['arch']) - y) / y))
        model.observe(x['arch'], y, not x['proposal'])
    return out


def _scores(errs: list) -> dict:
    """The summary's figure (median over the last <= 20 proposals) and the issue's (the
    proposals predicted from at least 10 measurements)."""
    e = [v for _, v in errs]
    after = [v for n, v in errs if n >= 10]
    return dict(
        last_20=round(float(np.median(e[-20:])), 4),
        after_10=round(float(np.median(after)), 4) if after else None,
        n_after_10=len(after),
        proposals=len(e),
        _after=after,
    )


def _noise(run: dict, quiet: dict) -> dict:
    """How far the recorded latencies are from a constant multiple of the re-timed ones
    (the run's load factor): all of it, what is left within one timing window (what an
    anchor re-timed in the window cannot remove), and with one round instead of three."""
    xs = [x for x in run['trials'] if x['onnx'] in quiet]
    lr = np.log([x['y'] / quiet[x['onnx']] for x in xs])
    l1 = np.log([x['first'] / quiet[x['onnx']] for x in xs if not x['cached']])
    factor = float(np.median(lr))
    win = np.array([x['window'] for x in xs])
    wmed = {w: float(np.median(lr[win == w])) for w in set(win.tolist())}
    within = [v - wmed[w] for v, w in zip(lr, win)]
    out = dict(
        load_factor=round(float(np.exp(factor)), 4),
        windows=len(wmed),
        window_factor_spread=round(float(np.std(list(wmed.values()))), 4),
        deviation=round(float(np.median(np.abs(np.exp(lr - factor) - 1))), 4),
        deviation_within_window=round(float(np.median(np.abs(np.expm1(within)))), 4),
        deviation_one_round=round(float(np.median(np.abs(np.exp(l1 - factor) - 1))), 4),
    )
    anchored = [x for x in xs if x['unscaled']]
    if anchored:
        for key, v in (('anchored', 'y'), ('unanchored', 'unscaled')):
            lv = np.log([x[v] / quiet[x['onnx']] for x in anchored])
            out[f'{key}_log_std'] = round(float(np.std(lv)), 4)
    return out


def from_journals(args: argparse.Namespace) -> None:
    """The ``--journals`` mode (module docstring)."""
    runs = [_journal_run(d) for d in args.journals]
    if args.retimed:
        with open(args.retimed) as f:
            retimed = json.load(f)['retimed']
    else:
        retimed = _retime(runs, args.rounds)
    # the first round of a fresh detector is a cold start (12 % slow in the median when
    # this was written): the truth is the median of the others
    quiet = {k: float(np.median(v[1:])) for k, v in retimed['rounds_ms'].items()}
    missing = sorted(
        {x['onnx'] for r in runs for x in r['seeds'] + r['trials'] if x['onnx'] not in quiet}
    )
    if missing:
        raise SystemExit(f'--journals: no exported detector for {missing}')
    others = {x['onnx']: x['arch'] for r in runs for x in r['seeds'] + r['trials']}
    names = [osp.basename(osp.normpath(r['work_dir'])) for r in runs]
    values = dict(
        recorded=lambda x: x['y'],
        retimed=lambda x: quiet[x['onnx']],
        one_round=lambda x: x.get('first', x['y']),
    )
    from gpunet_mm.deploy.predictor import FEATURES

    fits_others = all(
        len(set(others) - {x['onnx'] for x in r['seeds'] + r['trials']}) >= len(FEATURES)
        for r in runs
    )
    table = {}
    for method in METHODS:
        if method[1] == 'others' and not fits_others:
            print(f'| {method[0]} | (too few other detectors to fit it) |')
            continue
        row = {}
        for vname, value in values.items():
            if vname == 'one_round' and method[1] == 'others':
                continue
            per = {
                n: _scores(_replay_run(r, method, value, quiet, others))
                for n, r in zip(names, runs)
            }
            pooled = [e for s in per.values() for e in s.pop('_after')]
            row[vname] = dict(
                pooled_after_10=round(float(np.median(pooled)), 4),
                mean_last_20=round(float(np.mean([s['last_20'] for s in per.values()])), 4),
                runs=per,
            )
        table[method[0]] = dict(base=method[1], refit=method[2], **row)
        print(
            f'| {method[0]} | '
            + ' | '.join(
                f'{100 * row[v]["pooled_after_10"]:.1f} % / {100 * row[v]["mean_last_20"]:.1f} %'
                for v in values
                if v in row
            )
            + ' |',
            flush=True,
        )
    noise = {n: _noise(r, quiet) for n, r in zip(names, runs)}
    out = dict(
        what='latency-predictor error of demo searches replayed without lookahead: pooled '
        'median over the proposals predicted from >= 10 measurements (after_10) and the '
        "summary's median over the last <= 20 proposals (last_20), against the recorded "
        'values, the re-timed ones (median of rounds 2..n) and the first round alone',
        journals=[osp.abspath(d) for d in args.journals],
        retimed=retimed,
        noise=noise,
        methods=table,
    )
    atomic_write_text(args.out, json.dumps(out, indent=1))
    for n, v in noise.items():
        print(n, v)


def _where(latency_json: str) -> dict:
    j = json.loads(latency_json or '{}')
    return dict(onnx=(j.get('env') or {}).get('onnx'), shape=tuple(j.get('shape') or (0, 0)))


if __name__ == '__main__':
    if not osp.isfile(RECORDED):
        raise SystemExit(f'{RECORDED} not found: run from the repository root')
    main()
