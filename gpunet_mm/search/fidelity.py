"""Multi-fidelity search: rungs, ASHA promotion and the rung the optimisers learn from.

A candidate first trains the shortest rung of the proxy schedule (``min_epochs``); the best
``1/eta`` of each rung, per latency budget, are promoted to the next rung and continue from
their last checkpoint, up to the full proxy schedule. Promotion is asynchronous, as in ASHA
(Li et al., 2020): whenever a worker is free, a candidate that is in the top ``1/eta`` of
the results its rung holds *so far* is promoted; no worker waits for a rung to fill.

Everything here is pure: the facts (which rung each trial reached, its metric there, which
promotions were decided) live in the journal, and the controller asks these functions what
to do with them. The optimisers never see a rung: before each ``ask`` the controller hands
them the points and values of one rung (BOHB's rule: the highest rung that holds at least
``min_observations`` results), so a model is never fitted on numbers from different
schedules.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..schema import FidelitySettings, FinalSettings, SchemaError, defaults, validate
from .continuation import schedule_epochs
from .trainer import SearchConfigError

#: ``nas.fidelity`` keys and their defaults (``min_epochs`` is required; ``None`` for the
#: whole dict: no rungs); declared, typed and range-checked in
#: :class:`gpunet_mm.schema.FidelitySettings`
FIDELITY_DEFAULTS: Dict[str, Any] = defaults(FidelitySettings)
#: ``nas.final`` keys and their defaults (:class:`gpunet_mm.schema.FinalSettings`)
FINAL_DEFAULTS: Dict[str, Any] = defaults(FinalSettings)
#: epochs of the full proxy schedule in ``--simulate`` when the config names none
SIMULATE_EPOCHS = 8


@dataclass(frozen=True)
class Rungs:
    """The rungs of one search: ``epochs[k]`` is the epoch count rung ``k`` ends at."""

    epochs: Tuple[int, ...]
    eta: int
    min_observations: int
    model: str = 'rung'
    final_stretch: bool = True
    promote: str = 'rung'
    brackets: str = 'asha'

    @property
    def last(self) -> int:
        return len(self.epochs) - 1

    def cost(self, rung: int) -> int:
        """Epochs an attempt at ``rung`` adds (a continuation counts only what it adds)."""
        return self.epochs[rung] - (self.epochs[rung - 1] if rung else 0)

    def to_top(self, rung: int) -> int:
        """Epochs from the end of ``rung`` (-1: before the first) to the end of the last."""
        return self.epochs[-1] - (self.epochs[rung] if rung >= 0 else 0)

    def promotable(
        self,
        results: Sequence[Mapping[str, Any]],
        promoted: set,
        budgets: Sequence[float],
        always: set = frozenset(),
        stretch: bool = False,
        scores: Optional[Sequence[Mapping[int, float]]] = None,
    ) -> List[Tuple[int, int]]:
        """``(trial_id, next rung)`` that may be promoted now, the most urgent first.

        ``results``: every rung result (``trial_id``, ``rung``, ``metric``, ``latency_ms``);
        ``promoted``: ``(trial_id, rung)`` promotions already decided. A result of rung ``k``
        is promotable when it ranks in the top ``floor(n / eta)`` of the ``n`` results rung
        ``k`` holds among the candidates within some budget (ranked by score, then lower
        latency, then the older trial: ties resolve the same way on every call). The score
        is the metric (``promote='rung'``, ASHA, the default), or with ``promote='predicted'``
        the value the candidate is predicted to reach higher up
        (:func:`predicted_values`), once enough candidates have climbed to learn it from,
        or with ``promote='joint'`` ``scores[i][trial_id]``, the joint model's value at the
        top rung for budget ``i`` (:func:`joint_values`, as the budget's optimiser store
        fitted it: ``JournalTrialStore.top_values``); a budget whose scores miss one of
        its rung's candidates (the model has not started) ranks that rung by the metric.
        Trials in
        ``always`` (the reference tiers) climb every rung, so the comparison with them is
        at the same schedule. Higher rungs go first (ASHA): the sooner a candidate reaches
        the full schedule, the sooner the search has a result to report. Within a rung the
        budgets take turns (each one's best, then each one's second, ...).

        ``stretch`` (the final stretch of a compute budget, when no new candidate could
        reach the top rung any more): every result below the top is promotable in the same
        order, not only the top ``1/eta``. What is left then buys more full-schedule results
        among the best candidates known, where a new first-rung start would buy a number
        that can never win (the winner is chosen at the top rung).

        """

        by_rung: Dict[int, List[Mapping[str, Any]]] = {}
        for r in results:
            if r['metric'] is not None and r['rung'] < self.last:
                by_rung.setdefault(int(r['rung']), []).append(r)
        out: List[Tuple[int, int]] = []
        for k in sorted(by_rung, reverse=True):
            rows = by_rung[k]
            score = {int(r['trial_id']): float(r['metric']) for r in rows}
            if self.promote == 'predicted':
                score.update(predicted_values(results, k, self.min_observations))
            # trial -> (its best place in a budget's order, -score, id): the sort key
            chosen: Dict[int, Tuple[int, float, int]] = {}
            ranked: List[Tuple[Mapping[str, Any], int]] = []
            for i, b in enumerate(budgets):
                within = [r for r in rows if r['latency_ms'] is not None and r['latency_ms'] <= b]
                own = scores[i] if self.promote == 'joint' and scores is not None else {}
                s_b = score
                if own and all(r['trial_id'] in own for r in within):
                    s_b = {r['trial_id']: float(own[r['trial_id']]) for r in within}
                within.sort(key=lambda r: (-s_b[r['trial_id']], r['latency_ms'], r['trial_id']))
                quota = len(within) if stretch else len(within) // self.eta
                top = within[:quota]
                if self.promote == 'predicted' and not stretch:
                    # the predictions move as more candidates climb, so the top 1/eta is a
                    # different set after each refit: promote into the places the rung
                    # has left (1/eta of it, all promotions counted), not each new top
                    # third, or the search spends its compute climbing and explores less
                    done = sum(
                        (r['trial_id'], k + 1) in promoted
                        for r in within
                        if r['trial_id'] not in always
                    )
                    top = [r for r in top if (r['trial_id'], k + 1) not in promoted]
                    top = top[: max(0, quota - done)]
                ranked += [(r, pos) for pos, r in enumerate(top)]
            ranked += [(r, 0) for r in rows if r['trial_id'] in always]
            for r, pos in ranked:
                key = (pos, -score[r['trial_id']], int(r['trial_id']))
                chosen[r['trial_id']] = min(chosen.get(r['trial_id'], key), key)
            for tid, _key in sorted(chosen.items(), key=lambda kv: kv[1]):
                if (tid, k + 1) not in promoted:
                    out.append((tid, k + 1))
        return out

    # ------------------------------------------------------------------ brackets
    def hyperband_shares(self) -> List[float]:
        """Hyperband's allocation over the starting rung: the share of new candidates that
        start at each rung.

        Hyperband (Li et al., 2018) runs brackets ``s = s_max .. 0``; bracket ``s`` starts
        ``ceil((s_max + 1) / (s + 1) * eta**s)`` candidates at rung ``s_max - s`` and spends
        about the same compute as every other bracket. A candidate's starting rung is drawn
        in those proportions (rungs 1/3/9 with eta 3: 9, 5 and 3 candidates of 17 start at
        1, 3 and 9 epochs)."""
        s_max = self.last
        n = [
            math.ceil((s_max + 1) / (s_max - k + 1) * self.eta ** (s_max - k))
            for k in range(s_max + 1)
        ]
        return [v / sum(n) for v in n]

    def start_weights(
        self, results: Sequence[Mapping[str, Any]], budget: Optional[float] = None
    ) -> List[float]:
        """The share of new candidates (within ``budget``) that start at each rung.

        ``'asha'``: every candidate starts at the first rung. ``'hyperband'``:
        :meth:`hyperband_shares`. ``'adaptive'``: Hyperband's share of rung ``k`` times how
        well rung ``k`` has ranked the top rung so far (:func:`rank_consistency`: Kendall's
        tau over the candidates within ``budget`` that finished both, clipped at 0; the top
        rung ranks itself perfectly). This is Hyper-Tune's bracket selection (Li et al.,
        VLDB 2022; MFES-HB weighs fidelities the same way): a rung whose order says nothing
        about the full schedule (tau <= 0) stops being an entry point, and its share goes
        to the rungs that rank well, while a rung that ranks well keeps its full share (it
        is the cheapest way to find the good candidates). Until a rung has
        ``min_observations`` such pairs its consistency is unknown and taken as 1
        (Hyperband's hedge). Only journal facts go in (rung results, measured latency).
        """
        if self.brackets == 'asha':
            return [1.0] + [0.0] * self.last
        shares = self.hyperband_shares()
        if self.brackets == 'adaptive':
            for k in range(self.last):
                tau, n = rank_consistency(results, k, self.last, budget)
                if n >= self.min_observations and tau is not None:
                    shares[k] *= max(0.0, tau)
        total = sum(shares)
        return [v / total for v in shares]

    def start_rung(
        self,
        results: Sequence[Mapping[str, Any]],
        started: Sequence[int],
        budget: Optional[float] = None,
        highest: Optional[int] = None,
    ) -> int:
        """The rung the next new candidate of a budget starts at (0 with ``'asha'``).

        ``started``: the starting rungs of that budget's candidates so far (the journal's
        facts); ``highest``: the highest rung the compute left affords. Deterministic
        (deficit round robin, no random draw): the rung whose share of the starts is
        furthest below its weight (:meth:`start_weights`) takes the next one, the lower rung
        on ties, so a search and its resume choose the same. A candidate that starts at
        rung ``k`` trains from scratch to rung ``k``'s epochs in one training, then climbs
        by promotion as any other."""
        top = self.last if highest is None else max(0, min(int(highest), self.last))
        w = self.start_weights(results, budget)[: top + 1]
        if sum(w) <= 0:
            return 0
        w = [v / sum(w) for v in w]
        n = len(started) + 1
        counts = [sum(1 for s in started if s == k) for k in range(top + 1)]
        return max(range(top + 1), key=lambda k: (w[k] * n - counts[k], -k))

    def model_rung(self, counts: Mapping[int, int]) -> int:
        """The highest rung with at least ``min_observations`` results (BOHB), else 0."""
        ok = [k for k, n in counts.items() if n >= self.min_observations]
        return max(ok, default=0)

    def model_values(
        self,
        by_rung: Mapping[int, Mapping[str, float]],
        k: int,
        features: Optional[Mapping[str, Sequence[float]]] = None,
    ) -> Dict[str, float]:
        """The values the optimisers model at rung ``k``: that rung's (``model='rung'``),
        plus, with ``model='offset'``, every point that stopped below it, shifted by the
        median gain from its last rung to ``k`` among the points that trained both. With
        ``model='joint'`` (and ``features``: point key -> its model inputs) every point's
        value at the *top* rung, from one model of every rung's results that takes the
        rung as an input (:func:`joint_values`)."""
        if self.model == 'joint' and features is not None:
            return joint_values(features, by_rung, self.epochs)
        out = dict(by_rung.get(k, {}))
        if self.model != 'offset':
            return out
        for j in range(k - 1, -1, -1):
            lower = by_rung.get(j, {})
            both = [out_k - lower[p] for p, out_k in by_rung.get(k, {}).items() if p in lower]
            if not both:
                continue
            gain = float(sorted(both)[len(both) // 2])
            for p, v in lower.items():
                out.setdefault(p, v + gain)
        return out


def predicted_values(
    results: Sequence[Mapping[str, Any]], rung: int, min_pairs: int, target: Optional[int] = None
) -> Dict[int, float]:
    """``trial_id -> predicted value at a higher rung`` for every result of ``rung``, learnt
    from the candidates that climbed; empty until enough of them have.

    Why: a short rung ranks candidates by how fast they learn, and at a latency budget the
    best networks are often the larger ones, which learn slower; ranking rung ``k`` by its
    own number sends the fast starters up and leaves the best late climbers at the bottom.
    The candidates that reached a higher rung ``j`` show how rung-``k`` numbers turn into
    rung-``j`` numbers, so the ranking uses that (learning-curve extrapolation learnt from
    the search's own data, in the spirit of Freeze-Thaw BO and DyHPO): a ridge regression
    of the rung-``j`` value on the candidate's values at rungs ``0..k`` (the slope of its
    curve so far) and its measured latency (its size, as the target sees it). ``j`` is the
    highest rung above ``k`` with at least ``min_pairs`` candidates that trained both (and
    more than the features + 2); none: nothing is predicted (the caller ranks by the
    metric). Only journal facts go in (metrics per rung, measured latency), never the
    objective's own form, so it works the same for a real detector. ``target``: predict
    that rung only (none: the highest with enough pairs).
    """
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    vals: Dict[int, Dict[int, float]] = {}
    lat: Dict[int, float] = {}
    for r in results:
        if r['metric'] is None or r['latency_ms'] is None:
            continue
        tid = int(r['trial_id'])
        vals.setdefault(tid, {})[int(r['rung'])] = float(r['metric'])
        lat[tid] = float(r['latency_ms'])
    have = [t for t, v in vals.items() if all(i in v for i in range(rung + 1))]
    need = max(int(min_pairs), rung + 4)  # features (rung + 2) + 2
    targets = sorted({k for v in vals.values() for k in v if k > rung}, reverse=True)
    if target is not None:
        targets = [target] if target > rung else []
    for j in targets:
        pairs = [t for t in have if j in vals[t]]
        if len(pairs) < need:
            continue

        def feats(ids: List[int]) -> np.ndarray:
            return np.array([[vals[t][i] for i in range(rung + 1)] + [lat[t]] for t in ids])

        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
        model.fit(feats(pairs), np.array([vals[t][j] for t in pairs]))
        ask = [t for t in have if rung in vals[t]]
        return dict(zip(ask, (float(p) for p in model.predict(feats(ask)))))
    return {}


def joint_values(
    features: Mapping[str, Sequence[float]],
    by_rung: Mapping[int, Mapping[str, float]],
    epochs: Sequence[int],
    max_points: int = 400,
) -> Dict[str, float]:
    """``point key -> its value at the top rung`` for every point with a rung result: the
    measured value where it reached the top rung, else the prediction of one Gaussian
    process over ``(point features, log epochs)`` fitted to every rung's results.

    Why: BOHB's rule shows the optimiser one rung's values, so it models either the many
    noisy first-rung numbers (which rank near-budget candidates by how fast they learn) or
    the few top-rung ones. A model with the fidelity as an input (FABOLAS, Klein et al.
    2017; BOCA, Kandasamy et al. 2017; multi-fidelity BO generally) learns from all of them
    at once: the points that climbed tell it how a rung's number relates to the top rung's
    *in that region of the space*, and the rest are read at the top rung through that.
    The optimiser still sees points and values only (the values on the top rung's
    scale). The input is ``log(epochs) / log(full)`` (rungs grow geometrically); an ARD
    Matern-5/2 kernel over the whole input plus white noise (the short rungs are noisy),
    hyperparameters fitted by marginal likelihood. At most ``max_points`` results go in:
    every result above the first rung, then the first rung's (in key order, so the fit is
    a function of the journal). Points without features are ignored."""
    from scipy.optimize import minimize
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    top = len(epochs) - 1
    span = math.log(epochs[-1]) if epochs[-1] > 1 else 1.0
    fid = [math.log(e) / span if epochs[-1] > 1 else 1.0 for e in epochs]
    rows = [
        (key, k, float(v))
        for k in sorted(by_rung, reverse=True)
        for key, v in sorted(by_rung[k].items())
        if key in features and 0 <= k <= top
    ][:max_points]
    out = {key: float(v) for key, v in by_rung.get(top, {}).items()}
    if len(rows) < 3:
        return out
    X = np.array([list(features[key]) + [fid[k]] for key, k, _ in rows], dtype=float)
    y = np.array([v for _, _, v in rows])
    mu, sd = float(y.mean()), float(y.std()) or 1.0
    D = X.shape[1]
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
        length_scale=np.full(D, 0.5), length_scale_bounds=(5e-3, 2e1), nu=2.5
    ) + WhiteKernel(0.1, (1e-6, 1.0))

    def lbfgs(obj_func: Any, theta0: Any, bounds: Any) -> Tuple[Any, float]:
        r = minimize(
            obj_func, theta0, jac=True, bounds=bounds, method='L-BFGS-B', options=dict(maxiter=50)
        )
        return r.x, r.fun

    import warnings

    gp = GaussianProcessRegressor(kernel=kernel, normalize_y=False, optimizer=lbfgs)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ConvergenceWarning)
        try:
            gp.fit(X, (y - mu) / sd)
        except (np.linalg.LinAlgError, ValueError):
            return out
    ask = sorted({key for v in by_rung.values() for key in v if key in features} - set(out))
    if ask:
        Q = np.array([list(features[key]) + [1.0] for key in ask], dtype=float)
        out.update(zip(ask, (float(p) * sd + mu for p in gp.predict(Q))))
    return out


def rank_consistency(
    results: Sequence[Mapping[str, Any]], rung: int, top: int, budget: Optional[float] = None
) -> Tuple[Optional[float], int]:
    """``(Kendall's tau, n)`` between the metrics at ``rung`` and at ``top`` over the ``n``
    candidates (within ``budget``, if given) that finished both; tau is None below 2
    candidates or when either side is constant. How far a rung's order can be trusted as
    the full schedule's, measured on the search's own candidates (Hyper-Tune, MFES-HB)."""
    from scipy.stats import kendalltau

    at: Dict[int, Dict[int, float]] = {rung: {}, top: {}}
    for r in results:
        k = int(r['rung'])
        if k not in at or r['metric'] is None:
            continue
        if budget is not None and (r['latency_ms'] is None or r['latency_ms'] > budget):
            continue
        at[k][int(r['trial_id'])] = float(r['metric'])
    both = sorted(set(at[rung]) & set(at[top]))
    if len(both) < 2:
        return None, len(both)
    tau = kendalltau([at[rung][t] for t in both], [at[top][t] for t in both]).statistic
    return (None if tau is None or not math.isfinite(tau) else float(tau)), len(both)


def fidelity_settings(fid: Mapping[str, Any]) -> Dict[str, Any]:
    """``nas.fidelity`` with its defaults, checked by its schema (types, ranges, unknown
    keys; a caller may hand it the user's dict as it is)."""
    try:
        return validate(FidelitySettings, fid, 'nas.fidelity').model_dump()
    except SchemaError as e:
        raise SearchConfigError(str(e)) from None


def full_epochs(cfg: Mapping[str, Any], nas: Mapping[str, Any], simulate: bool) -> Optional[int]:
    """Epochs of the full proxy schedule: ``nas.fidelity.max_epochs``, else the base
    config's ``train_cfg.max_epochs``, else (``--simulate`` only) :data:`SIMULATE_EPOCHS`."""
    fid = nas.get('fidelity') or {}
    if fid.get('max_epochs') is not None:
        return fid['max_epochs']
    tc = cfg.get('train_cfg') or {}
    if isinstance(tc, Mapping) and tc.get('max_epochs') is not None:
        return tc['max_epochs']
    return SIMULATE_EPOCHS if simulate else None


def _int(key: str, v: Any, lo: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise SearchConfigError(f'{key}: got {v!r}; allowed: integers >= {lo}')
    return v


def make_rungs(fid: Mapping[str, Any], max_epochs: Optional[int]) -> Rungs:
    """The rungs ``min_epochs * eta**k`` below ``max_epochs``, then ``max_epochs`` itself.

    Only what needs the schedule is checked here (the rest is the schema's)."""
    fid = fidelity_settings(fid)
    lo, eta = fid['min_epochs'], fid['eta']
    if max_epochs is None:
        raise SearchConfigError(
            'nas.fidelity: the full proxy schedule is unknown; set train_cfg.max_epochs '
            '(an epoch-based loop) or nas.fidelity.max_epochs'
        )
    if fid['promote'] == 'joint' and fid['model'] != 'joint':
        raise SearchConfigError(
            f"nas.fidelity.promote: got 'joint' with model={fid['model']!r}; promote='joint' "
            "ranks by the joint model's fit, so it needs model='joint'; allowed with "
            f"model={fid['model']!r}: promote='rung' or 'predicted'"
        )
    hi = _int('nas.fidelity.max_epochs (the full proxy schedule)', max_epochs, 1)
    if lo * eta > hi:
        raise SearchConfigError(
            f'nas.fidelity.min_epochs: got {lo} with eta {eta} and a full schedule of {hi} '
            f'epochs: that leaves one rung (nothing to promote); allowed: min_epochs <= '
            f'{hi // eta} (full schedule / eta)'
        )
    epochs, e = [], lo
    while e < hi:
        epochs.append(e)
        e *= eta
    if hi - epochs[-1] < max(1, epochs[-1] // 2) and len(epochs) > 1:
        # a last step of a few epochs ranks nothing new: merge it into the full schedule
        epochs.pop()
    epochs.append(hi)
    return Rungs(
        tuple(epochs),
        eta,
        int(fid['min_observations']),
        fid['model'],
        fid['final_stretch'],
        fid['promote'],
        fid['brackets'],
    )


def load_objective(path: Any) -> Callable[[Dict[str, Any], float, int], float]:
    """``'package.module:function'`` -> the function, checked to take ``(arch, epochs,
    seed)`` (``arch`` as ``GPUNetArch.to_dict()``)."""
    key = 'nas.simulate.objective'
    if not isinstance(path, str) or ':' not in path:  # the schema's check, for direct callers
        raise SearchConfigError(f"{key}: got {path!r}; allowed: 'package.module:function'")
    mod_name, _, fn_name = path.partition(':')
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:  # ImportError and whatever the module raises on import
        raise SearchConfigError(
            f'{key}: module {mod_name!r} does not import ({type(e).__name__}: {e})'
        ) from e
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise SearchConfigError(f'{key}: {mod_name!r} has no function {fn_name!r}')
    try:
        inspect.signature(fn).bind({}, 1.0, 0)
    except TypeError as e:
        raise SearchConfigError(
            f'{key}: {path} cannot be called as function(arch: dict, epochs: float, '
            f'seed: int) ({e})'
        ) from e
    except ValueError:  # a builtin without a signature: trust it
        pass
    return fn


def check_settings(cfg: Mapping[str, Any], nas: Mapping[str, Any], simulate: bool) -> None:
    """The checks of the multi-fidelity keys (``nas.fidelity``, ``nas.compute_budget``,
    ``nas.simulate.objective``) that need the base config or the environment, before
    anything trains. Types, ranges and unknown keys are the schema's
    (:class:`gpunet_mm.schema.NasSettings`), checked before this by ``nas_settings``."""
    fid = nas.get('fidelity')
    rungs = None
    if fid is not None:
        if not simulate:
            # the one check that a schedule can stop at a rung and resume (the workers cut
            # and resume it with the same rules): continuation owns it
            proxy = schedule_epochs(cfg)
            top = fid.get('max_epochs')
            if top is not None and not isinstance(top, bool) and isinstance(top, int):
                if top > proxy:
                    raise SearchConfigError(
                        f'nas.fidelity.max_epochs: got {top}, above the schedule the '
                        f'candidates train (train_cfg.max_epochs={proxy}); allowed: <= {proxy} '
                        '(or raise train_cfg.max_epochs)'
                    )
        rungs = make_rungs(fid, full_epochs(cfg, nas, simulate))
    budget = nas.get('compute_budget')
    if budget is not None:
        first = rungs.epochs[0] if rungs else full_epochs(cfg, nas, simulate)
        if first is None:
            raise SearchConfigError(
                'nas.compute_budget: the epochs of one training are unknown; set '
                'train_cfg.max_epochs (an epoch-based loop)'
            )
        if budget < first:
            raise SearchConfigError(
                f'nas.compute_budget: got {budget!r} epochs, smaller than one '
                f'{"rung" if rungs else "training"} ({first} epochs); allowed: >= {first}'
            )
        refs = list(nas.get('references') or [])
        need = (len(refs) + 1) * rungs.epochs[-1] if rungs and refs else 0
        if budget < need:
            # the references climb every rung on compute kept for them from the start, and
            # a candidate compares with them only at the top rung
            raise SearchConfigError(
                f'nas.compute_budget: got {budget!r} epochs; the reference tier(s) {refs} '
                f'train every rung ({rungs.epochs[-1]} epochs each) and at least one '
                f'candidate must be able to as well; allowed: >= {need} (or fewer '
                'nas.references)'
            )
    obj = (nas.get('simulate') or {}).get('objective')
    if obj is not None:
        load_objective(obj)


def rungs_of(cfg: Mapping[str, Any], nas: Mapping[str, Any], simulate: bool) -> Optional[Rungs]:
    fid = nas.get('fidelity')
    return None if fid is None else make_rungs(fid, full_epochs(cfg, nas, simulate))
