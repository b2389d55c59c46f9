"""Multi-fidelity search against full-fidelity search and the usual multi-fidelity peers.

Every method searches the same simulated objective: a learning curve per architecture
(:func:`gpunet_mm.nas.objectives.learning_curve` over a GPUNet surrogate: bigger networks
climb slower, so a short rung mis-ranks some), a full proxy schedule of ``E`` epochs, and a
latency budget at a percentile of the space's measured latencies. Compute is epochs summed
over every training (a continuation counts what it adds). At each compute level (a
fraction of the full-fidelity search's ``trials x E``) every method reports its winner;
what is compared is the winner's value after the *full* schedule (what the user gets).

Methods:

* ``ours``: ``tools/nas_search.py --simulate`` (the real controller and journal) with
  ``nas.fidelity`` (rungs 1/3/9 epochs, eta 3, asynchronous promotions ranked by the
  predicted higher-rung value, the final stretch of the budget spent on promotions) and
  ``nas.compute_budget``; its simulated clock charges a fixed ``CONTROLLER_S`` per
  controller step, not the host's time, so each run is a function of its seed;
* ``ours-asha``: the same with ``final_stretch=False`` (plain ASHA to the end: the
  ablation of the final stretch);
* ``ours-rung``: ``ours`` with ``promote='rung'`` (a rung ranks by its own metric, as
  ASHA does; the library's promotion rule, since the prediction did not pay overall in
  the 2026-12-03 run); every ``ours*`` column models ``model='rung'`` unless it names
  ``joint``;
* ``ours-norandom``: ``ours`` with ``random_fraction=0`` (every LA-MCTS-BO proposal from
  its model of the rung values: the ablation of BOHB's random share);
* ``ours-full``: the same search without rungs (every candidate trains the full schedule);
* ``ours-hb`` / ``ours-adaptive``: ``ours-rung`` with ``brackets='hyperband'`` (a fixed
  share of new candidates starts at the later rungs, from scratch) or ``'adaptive'``
  (those shares weighted by each rung's measured rank consistency with the top rung);
  ``start_rungs`` in each run's row counts the candidates that started at each rung;
* ``ours-joint`` / ``ours-joint-adaptive``: ``ours-rung`` / ``ours-adaptive`` with
  ``model='joint'`` (the optimisers model every point at the top rung, predicted by one
  GP over (point, log epochs) fitted to every rung's results);
* ``ours-joint-pred``: ``ours-joint`` with ``promote='predicted'`` (a rung ranked by the
  ridge prediction of a higher rung's value, into the places it has left);
* ``ours-joint-promote``: ``ours-joint`` with ``promote='joint'`` (a rung ranked by the
  joint model's value at the top rung: the same fit the optimiser is offered);
* ``dehb``: DEHB (``dehb`` package; fidelities 1..E, eta 3; each evaluation trains from
  scratch, as DEHB does);
* ``tpe-hb``: Optuna TPE with ``HyperbandPruner`` (a trial reports after each rung and
  continues while the pruner lets it);
* ``random-sh``: random search with successive halving (rungs 1/3/9, eta 3);
* ``oracle-sh`` (a diagnostic, not a competitor; labelled so in the tables, never counted
  as a peer): ``random-sh`` whose rungs rank by the true full-schedule value, i.e. a
  perfect promotion rule over random proposals at the same compute: the ceiling of what
  better promotions alone can buy.

The peers get the space's repair onto the budget with the problem's latency predictor (the
one ours is built with; ours also calibrates it), and the same exact-latency check before
training: a point measured over the budget is not trained and costs nothing.

Each run of ours also records ``oracle`` (the best full-schedule value among every
candidate it trained: what a perfect promotion rule could have picked) and ``top_rung``
(how many reached the full schedule), to tell a proposal problem from a promotion one.
Develop on seeds the reported run does not use (``--first-seed 100``).

    OMP_NUM_THREADS=1 python benchmarks/benchmark_multifidelity.py --seeds 10 \
        --json benchmarks/results/multifidelity.json --markdown
"""

from __future__ import annotations

import argparse
import json
import math
import os
import os.path as osp
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from gpunet_mm.models.arch_spec import GPUNetArch  # noqa: E402
from gpunet_mm.nas.objectives import learning_curve, make_problem  # noqa: E402

EPOCHS = 9
#: virtual seconds charged per controller step (``SimulatedExecutor.controller_s``): a
#: modelled cost, not the host's wall time, so a run is a function of its seed alone (the
#: controller's speed is measured by benchmark_search, not here); 0.05 s against a full
#: training of 60 s (the simulator's default ``mean_trial_s``)
CONTROLLER_S = 0.05
RUNGS = (1, 3, 9)
ETA = 3
METHODS = ('ours', 'ours-full', 'dehb', 'tpe-hb', 'random-sh')
PROBLEM_SPACES = {
    'gpunet-surrogate': dict(type='GPUNetSpace', variant='classification'),
    'gpunet-det-smalldata': dict(type='GPUNetSpace', variant='detection'),
}


class Objective:
    """The simulated training of one problem: a learning curve per architecture."""

    def __init__(self, problem: str) -> None:
        self.problem = make_problem(problem)
        self.space = self.problem.space
        self.name = problem
        # the curves' depth below the final value at epoch 0 (surrogate_curve's and
        # det_smalldata_curve's defaults: about 5x and 3x the spread of the final values)
        self.gap = 15.0 if problem == 'gpunet-surrogate' else 30.0
        self._cache: Dict[str, Tuple[float, float]] = {}

    def _eval(self, arch: GPUNetArch) -> Tuple[float, float]:
        h = arch.structural_hash()
        if h not in self._cache:
            self._cache[h] = self.problem.evaluate(arch)
        return self._cache[h]

    def final(self, arch: Any) -> float:
        return self._eval(_arch(arch))[0]

    def latency(self, arch: Any) -> float:
        return self._eval(_arch(arch))[1]

    def curve(self, arch: Any, epochs: float, seed: int) -> float:
        a = _arch(arch)
        return learning_curve(self.final(a), a, epochs, seed, EPOCHS, gap=self.gap)


def _arch(a: Any) -> GPUNetArch:
    return a if isinstance(a, GPUNetArch) else GPUNetArch.from_dict(a)


def budgets_at(obj: Objective, percentiles: List[float], n: int = 400) -> List[float]:
    """Latency budgets at percentiles of the measured latency of random architectures."""
    X = obj.space.sample(n, np.random.default_rng(12345))
    lat = [obj.latency(obj.space.decode(x)) for x in X]
    return [round(float(np.percentile(lat, p)), 4) for p in percentiles]


def best_of_random(
    obj: Objective, budget: float, ns: List[int], pool: int = 3000, draws: int = 2000
) -> Dict[int, float]:
    """The median over ``draws`` of the best true full-schedule value among ``n`` random
    feasible candidates (repaired onto the budget and measured, as the peers draw theirs),
    for each ``n`` in ``ns``: a diagnostic ceiling. With compute ``C`` and a first rung of
    ``R`` epochs, a *perfect* first-rung ranker trains ``(C - E) / R`` candidates and takes
    the best to the full schedule, so no promotion rule over random proposals does better."""
    rng = np.random.default_rng(777)
    led = _Ledger(obj, budget, float('inf'))
    vals = []
    for x in obj.space.sample(pool, rng):
        y = led.feasible(x)
        if y is not None:
            vals.append(obj.final(obj.space.decode(y)))
    v = np.asarray(vals)
    return {
        n: float(np.median([v[rng.choice(len(v), n, replace=False)].max() for _ in range(draws)]))
        for n in ns
    }


# ---------------------------------------------------------------------- ours
def run_ours(
    obj: Objective, budget: float, compute: float, seed: int, fidelity: bool, **fid: Any
) -> Dict:
    from functools import partial

    from gpunet_mm.search.api import run_search
    from gpunet_mm.search.journal import SearchJournal
    from gpunet_mm.search.simulate import SimulatedExecutor, SurrogateLatency

    cfg = dict(
        search_space=PROBLEM_SPACES[obj.name],
        search_optimizer=dict(type='LaMCTSBO', seed=seed),
        train_cfg=dict(max_epochs=EPOCHS),
        nas=dict(
            metric='metric',
            num_trials=100000,
            seed=seed,
            references=[],
            calibration_samples=2,
            ask_batch=4,
            compute_budget=compute,
            simulate=dict(budgets=[budget], num_workers=4),
        ),
    )
    if fidelity:
        # every column names what it models: the library's default moved from 'rung' to
        # 'joint' after the 2026-12-03 run, and the earlier columns keep their meaning
        fid.setdefault('model', 'rung')
        cfg['nas']['fidelity'] = dict(min_epochs=RUNGS[0], eta=ETA, max_epochs=EPOCHS, **fid)
    executor = SimulatedExecutor(
        partial(_curve_of, obj.name),
        num_workers=4,
        seed=seed,
        full_epochs=EPOCHS,
        controller_s=CONTROLLER_S,
    )
    with tempfile.TemporaryDirectory(prefix='mf_bench_') as wd:
        s = run_search(
            cfg,
            wd,
            simulate=True,
            executor=executor,
            latency=SurrogateLatency(obj.latency),
            write_reports=False,
        )
        w = s['best_per_budget'][f'{s["budgets_ms"][0]:g}']
        with SearchJournal.open(wd) as j:
            arch = None if w is None else j.trial(w['trial_id']).arch
            done = [t for t in j.trials() if t.attempts > 0]
            # diagnosis: the best final value among every candidate trained (what a perfect
            # promotion rule could have picked) and how many reached the full schedule
            oracle = max(
                (obj.final(t.arch) for t in done if t.latency_ms and t.latency_ms <= budget),
                default=None,
            )
    fid = s.get('fidelity') or {}
    return dict(
        winner=None if arch is None else obj.final(arch),
        compute=s['compute_epochs'],
        candidates=len(done),
        top_rung=(fid.get('rung_occupancy') or [len(done)])[-1],
        start_rungs=fid.get('start_rungs'),
        oracle=oracle,
    )


_OBJECTIVES: Dict[str, Objective] = {}


def _objective(name: str) -> Objective:
    if name not in _OBJECTIVES:
        _OBJECTIVES[name] = Objective(name)
    return _OBJECTIVES[name]


def _curve_of(name: str, arch: Any, epochs: float, seed: int) -> float:
    return _objective(name).curve(arch, epochs, seed)


# ---------------------------------------------------------------------- peers
class _Ledger:
    """Compute spent by a peer, and the best value seen per epochs (the winner: the best at
    the highest fidelity reached, as for ours)."""

    def __init__(self, obj: Objective, budget: float, compute: float) -> None:
        self.obj, self.budget, self.compute = obj, budget, compute
        self.spent = 0.0
        self.best: Dict[int, Tuple[float, str]] = {}  # epochs -> (value, arch json)
        self.n = 0

    def feasible(self, x: np.ndarray) -> Optional[np.ndarray]:
        """The point repaired onto the budget with the problem's latency predictor (what
        ours starts from), then measured: None when it is over the budget (not trained)."""
        sp = self.obj.space
        predict = self.obj.problem.constraint_fn

        def lat(v: np.ndarray) -> float:
            return predict(sp.decode(v))

        y = sp.repair(sp.canonical(np.asarray(x, dtype=float)[None])[0], lat, self.budget)
        if y is None or self.obj.latency(sp.decode(y)) > self.budget:
            return None
        return y

    def train(self, x: np.ndarray, start: int, end: int, seed: int) -> float:
        self.spent += end - start
        arch = self.obj.space.decode(x)
        v = self.obj.curve(arch, end, seed)
        if end not in self.best or v > self.best[end][0]:
            self.best[end] = (v, json.dumps(arch.to_dict()))
        return v

    @property
    def left(self) -> float:
        return self.compute - self.spent

    def winner(self) -> Dict:
        if not self.best:
            return dict(winner=None, compute=self.spent, candidates=self.n)
        _, arch = self.best[max(self.best)]
        return dict(winner=self.obj.final(json.loads(arch)), compute=self.spent, candidates=self.n)


def run_random_sh(
    obj: Objective, budget: float, compute: float, seed: int, oracle: bool = False
) -> Dict:
    """Brackets of successive halving over random feasible points until compute runs out.

    ``oracle=True`` is the ``oracle-sh`` diagnostic, not a competitor: the same proposals
    and compute accounting, but each rung ranks by the candidate's *true* full-schedule
    value (a perfect promotion rule), so the column is the ceiling of random proposals with
    successive halving at that compute."""
    led = _Ledger(obj, budget, compute)
    rng = np.random.default_rng(seed)
    per = sum((RUNGS[k] - (RUNGS[k - 1] if k else 0)) / ETA**k for k in range(len(RUNGS)))
    n = max(ETA ** (len(RUNGS) - 1), int(math.floor(compute / per)))
    while led.left >= RUNGS[0]:
        pts = []
        for x in obj.space.sample(n, rng):
            y = led.feasible(x)
            if y is not None:
                pts.append(y)
        if not pts:
            break
        alive = [(p, led.n + i) for i, p in enumerate(pts)]
        led.n += len(pts)
        start = 0
        for end in RUNGS:
            scored = []
            for p, tid in alive:
                if led.left < end - start:
                    break
                v = led.train(p, start, end, seed * 100_003 + tid)
                scored.append((obj.final(obj.space.decode(p)) if oracle else v, p, tid))
            scored.sort(key=lambda s: -s[0])
            alive = [(p, tid) for _, p, tid in scored[: max(1, len(scored) // ETA)]]
            start = end
            if not alive or led.left <= 0:
                break
        n = max(ETA ** (len(RUNGS) - 1), int(math.floor(led.left / per)))
    return led.winner()


def run_tpe_hb(obj: Objective, budget: float, compute: float, seed: int) -> Dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    led = _Ledger(obj, budget, compute)
    dims = obj.space.dim_specs

    def objective(trial: Any) -> float:
        x = np.array([trial.suggest_int(d.name, 0, d.levels - 1) for d in dims], dtype=float)
        y = led.feasible(x)
        if y is None:
            raise optuna.TrialPruned()
        tid, led.n = led.n, led.n + 1
        start, v = 0, float('nan')
        for k, end in enumerate(RUNGS):
            if led.left < end - start:
                raise optuna.TrialPruned()
            v = led.train(y, start, end, seed * 100_003 + tid)
            trial.report(v, end)
            if k < len(RUNGS) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
            start = end
        return v

    # HyperbandPruner puts a trial in a bracket by a hash of the study's name and the trial
    # number; an unnamed study gets a random name, so name it after the seed or a rerun of
    # the seed differs
    study = optuna.create_study(
        study_name=f'tpe-hb-{seed}',
        direction='maximize',
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=RUNGS[0], max_resource=EPOCHS, reduction_factor=ETA
        ),
    )

    def stop(study: Any, trial: Any) -> None:
        if led.left < RUNGS[0]:
            study.stop()

    study.optimize(objective, n_trials=100000, callbacks=[stop])
    return led.winner()


def run_dehb(obj: Objective, budget: float, compute: float, seed: int) -> Dict:
    import ConfigSpace as CS
    from dehb import DEHB

    led = _Ledger(obj, budget, compute)
    dims = obj.space.dim_specs
    cs = CS.ConfigurationSpace(seed=seed)
    for d in dims:
        cs.add(CS.UniformIntegerHyperparameter(d.name, 0, max(1, d.levels - 1)))

    def f(config: Any, fidelity: float, **kw: Any) -> Dict[str, float]:
        x = np.array([min(config[d.name], d.levels - 1) for d in dims], dtype=float)
        y = led.feasible(x)
        if y is None:
            return dict(fitness=1e6, cost=0.0)
        tid, led.n = led.n, led.n + 1
        end = int(round(fidelity))
        return dict(fitness=-led.train(y, 0, end, seed * 100_003 + tid), cost=float(end))

    with tempfile.TemporaryDirectory(prefix='dehb_') as out:
        dehb = DEHB(
            f=f,
            cs=cs,
            dimensions=len(dims),
            min_fidelity=RUNGS[0],
            max_fidelity=EPOCHS,
            eta=ETA,
            n_workers=1,
            output_path=out,
            seed=seed,
            log_level='ERROR',
        )
        while led.left >= RUNGS[0]:
            job = dehb.ask()
            if led.left < job['fidelity']:
                break
            dehb.tell(job, f(job['config'], job['fidelity']))
    return led.winner()


RUNNERS: Dict[str, Callable[..., Dict]] = {
    # promotion by the predicted higher-rung value (fidelity.promote='predicted')
    'ours': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=True, promote='predicted'),
    'ours-offset': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=True, model='offset'),
    # the optimisers model every point at the top rung, predicted by one GP over (point,
    # log epochs) fitted to every rung's results (fidelity.model='joint')
    'ours-joint': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=True, model='joint'),
    # the joint model with promotion by the ridge-predicted higher-rung value
    'ours-joint-pred': lambda o, b, c, s: run_ours(
        o, b, c, s, fidelity=True, model='joint', promote='predicted'
    ),
    # the joint model ranks each rung too: by its prediction of the top-rung value
    # (fidelity.promote='joint')
    'ours-joint-promote': lambda o, b, c, s: run_ours(
        o, b, c, s, fidelity=True, model='joint', promote='joint'
    ),
    'ours-joint-adaptive': lambda o, b, c, s: run_ours(
        o, b, c, s, fidelity=True, model='joint', brackets='adaptive'
    ),
    # ablation: plain ASHA to the end of the budget (no final stretch)
    'ours-asha': lambda o, b, c, s: run_ours(
        o, b, c, s, fidelity=True, final_stretch=False, promote='predicted'
    ),
    # ablation: promotion by the rung's own metric (ASHA's rule) instead of the prediction
    'ours-rung': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=True, promote='rung'),
    # ablation: no random share (every LA-MCTS-BO proposal from its model of the rung values)
    'ours-norandom': lambda o, b, c, s: run_ours(
        o, b, c, s, fidelity=True, promote='predicted', random_fraction=0.0
    ),
    'ours-full': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=False),
    # the starting rung: Hyperband's fixed brackets, or weighted by each rung's measured
    # rank consistency with the top rung (fidelity.brackets; Hyper-Tune's bracket choice)
    'ours-hb': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=True, brackets='hyperband'),
    'ours-adaptive': lambda o, b, c, s: run_ours(o, b, c, s, fidelity=True, brackets='adaptive'),
    'dehb': run_dehb,
    'tpe-hb': run_tpe_hb,
    'random-sh': run_random_sh,
    # diagnostic, not a competitor: random + SH promoting by the TRUE full-schedule value
    'oracle-sh': lambda o, b, c, s: run_random_sh(o, b, c, s, oracle=True),
}
#: columns that are diagnostics (ceilings), labelled so in the tables and never a peer
DIAGNOSTICS = ('oracle-sh',)


def one(job: Tuple[str, str, float, float, float, int]) -> Dict:
    problem, method, budget, frac, compute, seed = job
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    t0 = time.perf_counter()
    r = RUNNERS[method](_objective(problem), budget, compute, seed)
    return dict(
        r,
        problem=problem,
        method=method,
        budget_ms=budget,
        fraction=frac,
        seed=seed,
        wall_s=time.perf_counter() - t0,
    )


def summarise(rows: List[Dict]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for r in rows:
        key = f'{r["problem"]}|{r["budget_ms"]:g}|{r["fraction"]:.3g}|{r["method"]}'
        out.setdefault(key, []).append(r['winner'] if r['winner'] is not None else float('nan'))
    return {k: dict(median=float(np.nanmedian(v)), n=len(v)) for k, v in out.items()}


def markdown(rows: List[Dict], methods: List[str], fracs: List[float]) -> str:
    s = summarise(rows)
    lines = []
    for problem in sorted({r['problem'] for r in rows}):
        for b in sorted({r['budget_ms'] for r in rows if r['problem'] == problem}):
            lines.append(f'\n{problem}, budget {b:g} ms (median winner after the full schedule)\n')
            heads = [f'{m} (diagnostic)' if m in DIAGNOSTICS else m for m in methods]
            lines.append('| compute | ' + ' | '.join(heads) + ' |')
            lines.append('|---' * (len(methods) + 1) + '|')
            for f in fracs:
                cells = []
                for m in methods:
                    v = s.get(f'{problem}|{b:g}|{f:.3g}|{m}')
                    cells.append('-' if v is None else f'{v["median"]:.2f}')
                lines.append(f'| {f:.3g}x | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def paired(
    rows: List[Dict], a: str, b: str, problem: str, budget: float, fraction: float
) -> Tuple[float, int, int]:
    """``a`` against ``b`` seed by seed (the runs are functions of their seed, so a seed is a
    pair): the mean difference of their winners and the seeds ``a`` is ahead / behind on.
    A median can put two methods in one order while most seeds put them in the other;
    the pairs say which."""
    won: Dict[str, Dict[int, float]] = {a: {}, b: {}}
    for r in rows:
        if (
            r['method'] in won
            and r['problem'] == problem
            and r['budget_ms'] == budget
            and f'{r["fraction"]:.3g}' == f'{fraction:.3g}'
            and r['winner'] is not None
        ):
            won[r['method']][int(r['seed'])] = float(r['winner'])
    seeds = sorted(set(won[a]) & set(won[b]))
    d = [won[a][k] - won[b][k] for k in seeds]
    mean = float(np.mean(d)) if d else float('nan')
    return mean, sum(x > 0 for x in d), sum(x < 0 for x in d)


def targets(
    rows: List[Dict], fracs: List[float], ours: str = 'ours', ceiling: bool = True
) -> List[str]:
    """The issue's targets, one line each, from the medians of ``rows``: ``ours`` >= the
    full-fidelity search at every compute level; ``ours`` at 1/3 of the compute >= the
    full search's median at 1x; ``ours`` ahead of every peer at every compute level, with
    the paired per-seed comparison (:func:`paired`) against each peer whose median is
    ahead (``ceiling``: and the ``oracle-sh`` diagnostic against the full search, if it
    ran)."""
    s = summarise(rows)
    peers = [m for m in ('dehb', 'tpe-hb', 'random-sh') if any(r['method'] == m for r in rows)]
    out = []
    for problem in sorted({r['problem'] for r in rows}):
        for b in sorted({r['budget_ms'] for r in rows if r['problem'] == problem}):

            def med(m: str, f: float, problem: str = problem, b: float = b) -> float:
                v = s.get(f'{problem}|{b:g}|{f:.3g}|{m}')
                return float('nan') if v is None else v['median']

            for f in fracs:
                o, full = med(ours, f), med('ours-full', f)
                beaten = [p for p in peers if not o >= med(p, f)]
                pairs = []
                for p in beaten:
                    mean, ahead, behind = paired(rows, ours, p, problem, b, f)
                    pairs.append(f'{p} {mean:+.2f}, ahead on {ahead} seeds, behind on {behind}')
                out.append(
                    f'{problem} {b:g} ms {f:.3g}x: {ours} {o:.2f} vs ours-full {full:.2f} '
                    f'({"met" if o >= full else "NOT met"}); ahead of every peer: '
                    + (
                        'yes'
                        if not beaten
                        else f'no (behind {", ".join(beaten)}; paired per seed: '
                        + '; '.join(pairs)
                        + ')'
                    )
                )
            third = min(fracs)
            o, top = med(ours, third), med('ours-full', max(fracs))
            out.append(
                f'{problem} {b:g} ms: {ours} at {third:.3g}x {o:.2f} vs ours-full at '
                f'{max(fracs):.3g}x {top:.2f} ({"met" if o >= top else "NOT met"})'
            )
            if ceiling and any(r['method'] == 'oracle-sh' for r in rows):
                c = med('oracle-sh', third)
                out.append(
                    f'{problem} {b:g} ms: ceiling (diagnostic) oracle-sh at {third:.3g}x '
                    f'{c:.2f} vs ours-full at {max(fracs):.3g}x {top:.2f} (a perfect promotion '
                    f'rule over random proposals {"reaches" if c >= top else "does not reach"} it)'
                )
    return out


def print_targets(rows: List[Dict], methods: List[str], fracs: List[float]) -> None:
    """The targets for every column of ours in the run (``ours-full`` is the yardstick)."""
    ours = [m for m in methods if m.startswith('ours') and m != 'ours-full'] or ['ours']
    for i, m in enumerate(ours):
        print('\n'.join(targets(rows, fracs, m, ceiling=i == 0)))


def merge_runs(paths: Sequence[str]) -> List[Dict]:
    """The runs of several result files as one run. A run is a function of its (problem,
    method, budget, compute fraction, seed), so the same key twice must hold the same
    winner: two files that disagree come from different code, and merging them would
    mix two searches in one median."""
    rows: Dict[Tuple, Dict] = {}
    for path in paths:
        with open(path) as f:
            for r in json.load(f)['runs']:
                key = (r['problem'], r['method'], r['budget_ms'], f'{r["fraction"]:.3g}', r['seed'])
                if key in rows and rows[key]['winner'] != r['winner']:
                    raise ValueError(
                        f'{path}: run {key} has winner {r["winner"]}, an earlier file '
                        f'{rows[key]["winner"]}; runs of different code cannot be merged'
                    )
                rows[key] = r
    return list(rows.values())


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--problems', default='gpunet-surrogate')
    p.add_argument(
        '--methods',
        default=None,
        help=f'default: {",".join(METHODS)} (with --report: every method of the run)',
    )
    p.add_argument('--seeds', type=int, default=10)
    p.add_argument(
        '--first-seed',
        type=int,
        default=0,
        help='seeds FIRST..FIRST+SEEDS-1 (develop on seeds the reported run does not use)',
    )
    p.add_argument('--percentiles', default='30,70')
    p.add_argument('--fractions', default='0.3333,0.5,1')
    p.add_argument('--full-trials', type=int, default=30, help='the full search: N x E epochs')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--json', default=None)
    p.add_argument('--markdown', action='store_true')
    p.add_argument(
        '--ceiling',
        action='store_true',
        help='print only the diagnostic ceiling: the median best of N random feasible '
        'candidates, N what a perfect first-rung ranker buys at each compute level',
    )
    p.add_argument(
        '--report',
        default=None,
        nargs='+',
        metavar='JSON',
        help='print the tables of earlier runs only; several runs (e.g. seeds 0-9 and '
        '10-29) are read as one',
    )
    a = p.parse_args(argv)
    methods = [m for m in (a.methods or ','.join(METHODS)).split(',') if m]
    fracs = [float(f) for f in a.fractions.split(',')]
    if a.report:
        rows = merge_runs(a.report)
        ran = list(dict.fromkeys(r['method'] for r in rows))
        methods = [m for m in methods if m in ran] if a.methods else ran
        fracs = sorted({r['fraction'] for r in rows})
        print(markdown(rows, methods, fracs))
        print_targets(rows, methods, fracs)
        return 0
    full = a.full_trials * EPOCHS
    if a.ceiling:
        for problem in a.problems.split(','):
            obj = _objective(problem)
            for b in budgets_at(obj, [float(q) for q in a.percentiles.split(',')]):
                ns = {f: int((f * full - EPOCHS) // RUNGS[0]) + 1 for f in fracs}
                best = best_of_random(obj, b, sorted(set(ns.values())))
                for f, n in ns.items():
                    print(
                        f'{problem} {b:g} ms {f:.3g}x: a perfect first-rung ranker over {n} '
                        f'random feasible candidates (diagnostic): median best {best[n]:.2f}'
                    )
        return 0
    jobs = []
    budgets = {}
    for problem in a.problems.split(','):
        budgets[problem] = budgets_at(
            _objective(problem), [float(q) for q in a.percentiles.split(',')]
        )
        for b in budgets[problem]:
            for f in fracs:
                for m in methods:
                    for seed in range(a.first_seed, a.first_seed + a.seeds):
                        jobs.append((problem, m, b, f, f * full, seed))
    jobs.sort(key=lambda j: -j[3] * (3 if j[1] == 'ours' else 1))  # longest first
    t0 = time.perf_counter()
    rows: List[Dict] = []
    with ProcessPoolExecutor(a.workers) as pool:
        for i, r in enumerate(pool.map(one, jobs), 1):
            rows.append(r)
            if i % 20 == 0 or i == len(jobs):
                print(f'{i}/{len(jobs)} runs, {time.perf_counter() - t0:.0f} s', flush=True)
                if a.json:  # what is done so far survives a stopped run
                    with open(a.json + '.partial', 'w') as f:
                        json.dump(dict(runs=rows, done=i, of=len(jobs)), f)
    result = dict(
        epochs=EPOCHS,
        controller_s=CONTROLLER_S,
        rungs=list(RUNGS),
        eta=ETA,
        full_compute=full,
        full_trials=a.full_trials,
        budgets=budgets,
        percentiles=a.percentiles,
        seeds=a.seeds,
        first_seed=a.first_seed,
        wall_s=time.perf_counter() - t0,
        summary=summarise(rows),
        runs=rows,
    )
    if a.json:
        os.makedirs(osp.dirname(osp.abspath(a.json)), exist_ok=True)
        with open(a.json, 'w') as f:
            json.dump(result, f, indent=1)
    if a.markdown:
        print(markdown(rows, methods, fracs))
        print_targets(rows, methods, fracs)
    print(f'{len(rows)} runs in {result["wall_s"]:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
