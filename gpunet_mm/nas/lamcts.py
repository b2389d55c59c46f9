"""LA-MCTS-guided Bayesian optimisation, parallel and native to discrete spaces.

What it keeps from LA-MCTS (Wang et al., NeurIPS 2020; used by GPUNet): a tree of learned
partitions (KMeans(2) on ``[x, f(x)]`` labels good/bad samples, an RBF SVM turns the
labels into a boundary), UCB descent to the most promising leaf, and BO inside it with a
Matern-2.5 GP and expected improvement.

What it changes, and why:

* **Lazy tree.** UCB only compares the children of the nodes on the chosen path, and a
  child's statistics are known as soon as its parent is split, so only the ``depth``
  nodes on the path are split (``O(depth)`` KMeans/SVM fits instead of the whole tree).
  This is what keeps a proposal at 1000 observations well under a second.
* **Local GP.** The GP is trained on at most ``gp_max_points`` points nearest to the
  leaf's best point (the leaf is local anyway) on ``[0, 1]`` inputs and standardised
  outputs: cubic cost stays bounded.
* **Trust region inside the leaf** (TuRBO-style): most candidates perturb a few
  dimensions of the leaf's best points within a box whose size grows on successes and
  shrinks on failures; the rest are sampled in the whole leaf. Without it, EI over
  space-filling candidates stalls far from the optimum on rugged functions (Ackley).
* **Discrete-native candidates.** Candidates are produced by the space itself
  (:meth:`SearchSpace.local_samples` / :meth:`SearchSpace.sample`), so for GPUNet every
  candidate is a real architecture; no continuous relaxation is rounded.
* **Batches and asynchrony.** Each of the ``n`` points of ``ask(n)`` is chosen after the
  earlier ones (and all still-running trials) were added with a *Kriging believer* value
  (the GP mean), which also counts as a visit in the UCB statistics, so a batch spreads.
  The points of one batch share the partition boundaries and the GP hyperparameters that
  its first point learnt (:class:`_BatchModel`): a batch of ``n`` costs about one model
  fit, not ``n``, which is what lets one controller keep 300 workers busy.
* **Constraint.** Candidates are ranked by EI and the first one whose predicted cost fits
  the (learnt) budget is taken, so the constraint is only evaluated where it matters and
  is never violated by a proposal. The best architectures sit *at* the budget, so the
  top-ranked candidates that miss it are not thrown away: each is pulled back along the
  line to the trust region's centre until it just fits (a bisection, a handful of cost
  evaluations), and the projected points compete on EI with the first feasible one.
* **A first design worth its trials.** The initial design is small (10 by default, so the
  GP starts after about 10 trials) and feasible by construction: the published GPUNet
  tiers (for the GPUNet space) and the best warm-start trials (``add_trial``) are
  projected onto the space and then onto the budget boundary as priors (in the spirit of
  piBO / PriorBand: what is known is tried first), and only the rest is a spread over the
  *feasible* region (:meth:`SearchSpace.feasible_design`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from .base import Optimizer, Trial
from .registry import NAS_OPTIMIZERS
from .space import GPUNetSpace, SearchSpace

BATCH_STRATEGIES = ('kriging_believer', 'constant_liar')
PRIOR_CHOICES = ('auto', 'tiers', 'none')


def tier_priors(space: SearchSpace) -> List[np.ndarray]:
    """The published GPUNet tiers as points of ``space`` (nearest point; empty elsewhere)."""
    if not isinstance(space, GPUNetSpace):
        return []
    from gpunet_mm.models.tiers import TIERS

    return [space.project(arch) for arch in TIERS]


class _BatchModel:
    """What the points of one ``ask(n)`` share: the partitions and the GP's hyperparameters.

    The first point of a batch learns them as LA-MCTS does at every step; the later ones
    (whose only new data are the fantasies of the points chosen before them) reuse each
    node's boundary, with its side predicted only for points it has not seen, and the GP
    kernel with its fitted hyperparameters, conditioned on the fantasies without another
    marginal-likelihood optimisation. The UCB descent itself is redone for every point with
    the fantasies counted, so a batch still spreads over the leaves. This is what keeps the
    controller ahead of hundreds of workers (a batch costs about one full model fit, not n).
    """

    def __init__(self) -> None:
        #: node (the sides taken from the root) -> its boundary, None when it has no split
        self.splits: Dict[Tuple[int, ...], Optional[SVC]] = {}
        #: node -> side of every point predicted so far (-1: not yet)
        self.sides: Dict[Tuple[int, ...], np.ndarray] = {}
        self.kernel: Any = None

    def node_sides(self, node: Tuple[int, ...], svm: SVC, F: np.ndarray, idx: np.ndarray):
        """The boundary's side of the points ``idx``, predicting only unseen ones."""
        known = self.sides.get(node)
        if known is None or len(known) < len(F):
            grown = np.full(len(F), -1, dtype=int)
            if known is not None:
                grown[: len(known)] = known
            known = self.sides[node] = grown
        todo = idx[known[idx] < 0]
        if len(todo):
            known[todo] = svm.predict(F[todo])
        return known[idx]


def _standardise(y: np.ndarray) -> np.ndarray:
    s = float(np.std(y))
    return (y - float(np.mean(y))) / (s if s > 1e-12 else 1.0)


def _one_spelling(
    group: str, values: Optional[Sequence[Any]], singles: Mapping[str, Any], defaults: Sequence[Any]
) -> Tuple[Any, ...]:
    """The settings given as a list (``group``, as ``config()`` writes them) or one keyword
    each (``singles``; None takes the default), whichever spelling was used."""
    if values is None:
        return tuple(d if v is None else v for v, d in zip(singles.values(), defaults))
    given = [k for k, v in singles.items() if v is not None]
    if given:
        raise ValueError(
            f'{group}={values!r} and {", ".join(given)}: got both spellings; allowed: one'
        )
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != len(singles):
        raise ValueError(f'{group}: got {values!r}; allowed: a list [{", ".join(singles)}]')
    return tuple(values)


@NAS_OPTIMIZERS.register_module()
class LaMCTSBO(Optimizer):
    """LA-MCTS-guided BO. See the module docstring for the design.

    Args:
        n_init: initial design size, priors included (default 10: the GP is fitted as
            soon as it can say anything; the trust region does the rest).
        priors: what the design tries first. ``'auto'``: the published tiers on a
            :class:`GPUNetSpace`, nothing elsewhere; ``'tiers'``; ``'none'``; or a list of
            architectures (``GPUNetArch``/dicts; points for other spaces). Every prior is
            projected onto the space and onto the budget boundary before it is proposed.
        n_prior_trials: how many of the best warm-start trials (``add_trial``) are also
            projected onto the (current) budget boundary and tried.
        n_random_min: the design's spread (non-prior) part is at least this large while
            fewer than ``n_init`` results are known.
        n_project: how many top-ranked over-budget candidates per proposal are pulled back
            onto the budget (0 turns the boundary search off).
        svm_max_points: each partition boundary is fitted on at most this many points
            (every k-th of the node's), which bounds the proposal time at 1000 observations.
        leaf_size: a node with more points than this is split (LA-MCTS uses 10-20).
        cp: UCB exploration weight on standardised values.
        max_depth: cap on the tree depth (bounds the per-proposal cost).
        n_candidates: candidates scored by the acquisition per proposal.
        local_fraction: share of candidates drawn in the trust region.
        gp_max_points: cap on the GP training set.
        batch_strategy: ``'kriging_believer'`` (GP mean) or ``'constant_liar'`` (best y).
        length_init / length_min / length_max: trust-region side (in ``[0, 1]`` units;
            default 0.8, 0.5**7, 1.6).
        success_tol / failure_tol: consecutive successes/failures that double/halve it
            (default 3, and ``max(4, min(dims, 20))``).
        length / tols: the same as lists, ``[init, min, max]`` and ``[success, failure]``:
            the spelling ``config()`` writes (and saved states hold), so a config
            rebuilds its optimiser. Give either spelling of a group, not both.
        random_fraction: share of the model-based proposals drawn uniformly from the
            space instead (repaired onto the budget where over it, as the multi-fidelity
            peers draw theirs), BOHB's random fraction. The model is fitted to what the
            store offers; in a multi-fidelity search that is a short rung's noisy values,
            and the random share keeps the search from locking onto their noise. Which
            proposals are random is a function of the trial id alone (every id where
            ``floor(id * f)`` steps up), so the share is exact over any run of asks and a
            resumed search draws the same ones. Default 0 (every proposal from the model);
            a multi-fidelity search sets it from ``nas.fidelity.random_fraction``.
    """

    name = 'lamcts'

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        minimize: bool = True,
        constraint_fn=None,
        budget: Optional[float] = None,
        calibration_quantile: float = 0.8,
        store: Optional[Any] = None,
        n_init: Optional[int] = None,
        priors: Any = 'auto',
        n_prior_trials: int = 3,
        n_random_min: int = 2,
        n_project: int = 8,
        svm_max_points: int = 400,
        leaf_size: int = 10,
        cp: float = 0.1,
        max_depth: int = 8,
        n_candidates: int = 1000,
        local_fraction: float = 0.8,
        gp_max_points: int = 100,
        gp_max_iter: int = 50,
        sparse_fraction: float = 0.5,
        ard: Optional[bool] = None,
        batch_strategy: str = 'kriging_believer',
        length_init: Optional[float] = None,
        length_min: Optional[float] = None,
        length_max: Optional[float] = None,
        success_tol: Optional[int] = None,
        failure_tol: Optional[int] = None,
        length: Optional[Sequence[float]] = None,
        tols: Optional[Sequence[Optional[int]]] = None,
        random_fraction: float = 0.0,
    ) -> None:
        length_init, length_min, length_max = _one_spelling(
            'length',
            length,
            dict(length_init=length_init, length_min=length_min, length_max=length_max),
            (0.8, 0.5**7, 1.6),
        )
        success_tol, failure_tol = _one_spelling(
            'tols', tols, dict(success_tol=success_tol, failure_tol=failure_tol), (3, None)
        )
        if batch_strategy not in BATCH_STRATEGIES:
            raise ValueError(
                f'batch_strategy: got {batch_strategy!r}; allowed: {", ".join(BATCH_STRATEGIES)}'
            )
        if (
            not isinstance(random_fraction, (int, float, np.floating, np.integer))
            or isinstance(random_fraction, bool)
            or not 0.0 <= float(random_fraction) <= 1.0
        ):
            raise ValueError(
                f'random_fraction: got {random_fraction!r}; allowed: a number in [0, 1]'
            )
        if leaf_size < 2:
            raise ValueError(f'leaf_size: got {leaf_size!r}; allowed: integers >= 2')
        if not 0.0 <= local_fraction <= 1.0:
            raise ValueError(f'local_fraction: got {local_fraction!r}; allowed: 0..1')
        if n_candidates < 1 or gp_max_points < 2 or max_depth < 0 or cp < 0:
            raise ValueError(
                f'n_candidates={n_candidates}, gp_max_points={gp_max_points}, '
                f'max_depth={max_depth}, cp={cp}; allowed: >= 1, >= 2, >= 0, >= 0'
            )
        if not 0 < length_min <= length_init <= length_max:
            raise ValueError(
                f'trust region lengths: got min {length_min}, init {length_init}, max '
                f'{length_max}; allowed: 0 < min <= init <= max'
            )
        super().__init__(
            space,
            seed=seed,
            minimize=minimize,
            constraint_fn=constraint_fn,
            budget=budget,
            calibration_quantile=calibration_quantile,
            store=store,
        )
        d = space.dims
        self.n_init = int(n_init) if n_init is not None else 10
        if self.n_init < 1:
            raise ValueError(f'n_init: got {n_init!r}; allowed: integers >= 1')
        if isinstance(priors, str):
            if priors not in PRIOR_CHOICES:
                raise ValueError(
                    f'priors: got {priors!r}; allowed: {", ".join(PRIOR_CHOICES)} or a list '
                    'of architectures / points'
                )
            self.priors: Any = priors
        elif priors is None:
            self.priors = 'none'
        else:
            self.priors = [p.to_dict() if hasattr(p, 'to_dict') else p for p in priors]
            self._prior_points()  # fail now, not at the first ask
        for name, v in (
            ('n_prior_trials', n_prior_trials),
            ('n_random_min', n_random_min),
            ('n_project', n_project),
        ):
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f'{name}: got {v!r}; allowed: integers >= 0')
        self.n_prior_trials = int(n_prior_trials)
        self.n_random_min = int(n_random_min)
        self.n_project = int(n_project)
        if not isinstance(svm_max_points, (int, np.integer)) or svm_max_points < 10:
            raise ValueError(f'svm_max_points: got {svm_max_points!r}; allowed: integers >= 10')
        self.svm_max_points = int(svm_max_points)
        self.leaf_size = int(leaf_size)
        self.cp = float(cp)
        self.max_depth = int(max_depth)
        self.n_candidates = int(n_candidates)
        self.local_fraction = float(local_fraction)
        self.gp_max_points = int(gp_max_points)
        self.gp_max_iter = int(gp_max_iter)
        self.sparse_fraction = float(sparse_fraction)
        # one length scale per dim pays off in ~10 dims; in 40+ it overfits 100 points and
        # its gradient dominates the proposal time
        self.ard = bool(ard) if ard is not None else d <= 20
        self.batch_strategy = batch_strategy
        self.random_fraction = float(random_fraction)
        self.length_init, self.length_min = float(length_init), float(length_min)
        self.length_max = float(length_max)
        self.success_tol = int(success_tol)
        self.failure_tol = int(failure_tol) if failure_tol is not None else max(4, min(d, 20))
        # adaptive state (saved)
        self.length = self.length_init
        self._succ = 0
        self._fail = 0
        self._best_y: Optional[float] = None
        self._liars: Dict[int, float] = {}
        self._batch_model = _BatchModel()  # the current ask(n)'s shared model
        self._design: List[List[float]] = []
        self._design_pos = 0
        self._design_end: Optional[int] = None  # trial ids below it belong to the design
        self.last_leaf_depth = 0  # diagnostics
        #: ids of the proposals drawn at random (``random_fraction``; diagnostics, this
        #: process only)
        self.random_ids: List[int] = []

    def config(self) -> Dict[str, Any]:
        return dict(
            type=type(self).__name__,
            n_init=self.n_init,
            priors=self.priors,
            n_prior_trials=self.n_prior_trials,
            n_random_min=self.n_random_min,
            n_project=self.n_project,
            svm_max_points=self.svm_max_points,
            leaf_size=self.leaf_size,
            cp=self.cp,
            max_depth=self.max_depth,
            n_candidates=self.n_candidates,
            local_fraction=self.local_fraction,
            gp_max_points=self.gp_max_points,
            gp_max_iter=self.gp_max_iter,
            sparse_fraction=self.sparse_fraction,
            ard=self.ard,
            batch_strategy=self.batch_strategy,
            length=[self.length_init, self.length_min, self.length_max],
            tols=[self.success_tol, self.failure_tol],
            random_fraction=self.random_fraction,
        )

    # ------------------------------------------------------------------ state
    def _extra_state(self) -> Dict[str, Any]:
        return dict(
            length=self.length,
            succ=self._succ,
            fail=self._fail,
            best_y=self._best_y,
            liars={str(k): v for k, v in self._liars.items()},
            design=self._design,
            design_pos=self._design_pos,
            design_end=self._design_end,
        )

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.length = float(extra['length'])
        self._succ, self._fail = int(extra['succ']), int(extra['fail'])
        self._best_y = None if extra['best_y'] is None else float(extra['best_y'])
        self._liars = {int(k): float(v) for k, v in extra['liars'].items()}
        self._design = [list(map(float, x)) for x in extra['design']]
        self._design_pos = int(extra['design_pos'])
        end = extra.get('design_end', self.n_init if self._design else None)
        self._design_end = None if end is None else int(end)

    # ------------------------------------------------------------------ trust region
    def _on_tell(self, trial: Trial) -> None:
        self._liars.pop(trial.id, None)
        if trial.status != 'complete':
            if trial.status == 'infeasible':
                self._register(improved=False)
            return
        y = self.internal(trial.value)
        if self._best_y is None:
            self._best_y = y
            return
        improved = y < self._best_y - 1e-3 * abs(self._best_y)
        self._best_y = min(self._best_y, y)
        # the initial design (and warm-start trials) say nothing about the region
        if self._design_end is not None and trial.id >= self._design_end:
            self._register(improved)

    def _register(self, improved: bool) -> None:
        if improved:
            self._succ, self._fail = self._succ + 1, 0
        else:
            self._succ, self._fail = 0, self._fail + 1
        if self._succ >= self.success_tol:
            self.length, self._succ = min(2.0 * self.length, self.length_max), 0
        if self._fail >= self.failure_tol:
            self.length, self._fail = self.length / 2.0, 0
            if self.length < self.length_min:  # converged: restart the region wide
                self.length = self.length_init

    # ------------------------------------------------------------------ proposing
    def _propose(self, n: int) -> np.ndarray:
        chosen: List[np.ndarray] = []
        taken: set = set()
        # 1) the initial design (made once, feasible by construction, priors first); trials
        #    added before the first ask (add_trial: a warm start) count towards it
        if self._design_end is None:
            X0 = self._initial_design()
            self._design = [[float(v) for v in x] for x in X0]
            self._design_end = len(self.trials) + len(self._design)
        while len(chosen) < n and self._design_pos < len(self._design):
            x = np.asarray(self._design[self._design_pos])
            self._design_pos += 1
            if self.admissible(x, taken):
                chosen.append(x)
                taken.add(self.space.key(x))
        if len(chosen) == n:
            return np.array(chosen)
        # 2) model-based, one point at a time with fantasies for pending points
        self._batch_model = _BatchModel()
        X_obs, y_obs = self.observations()
        if len(y_obs) < 2:
            rest = self._sample_new(n - len(chosen), taken)
            return np.vstack([np.array(chosen).reshape(-1, self.space.dims), rest])
        pend = [t for t in self.trials if t.status == 'pending']
        liar_default = float(np.min(y_obs)) if self.batch_strategy == 'constant_liar' else None
        X_f = [np.asarray(t.x) for t in pend] + chosen
        fallback = liar_default if liar_default is not None else float(np.mean(y_obs))
        y_f = [self._liars.get(t.id, fallback) for t in pend]
        y_f += [float(np.mean(y_obs))] * len(chosen)  # design points chosen in this call
        while len(chosen) < n:
            if self.is_random_slot(len(self.trials) + len(chosen)):
                x, mu = self._random_point(taken), float(np.mean(y_obs))
                self.random_ids.append(len(self.trials) + len(chosen))
            else:
                X = np.vstack([X_obs, np.array(X_f).reshape(-1, self.space.dims)])
                y = np.concatenate([y_obs, np.array(y_f, dtype=float)])
                x, mu = self._propose_one(X, y, len(y_obs), taken)
            chosen.append(x)
            taken.add(self.space.key(x))
            X_f.append(x)
            liar = float(np.min(y_obs)) if self.batch_strategy == 'constant_liar' else mu
            y_f.append(liar)
            self._pending_liars.append(liar)
        return np.array(chosen)

    def is_random_slot(self, trial_id: int) -> bool:
        """Whether the model-based proposal that gets ``trial_id`` is drawn at random
        (``random_fraction``): ids where ``floor(id * f)`` steps up, so any ``N``
        consecutive ids hold ``floor(N * f)`` or one more, and a resumed search agrees."""
        f = self.random_fraction
        return f > 0 and math.floor((trial_id + 1) * f) > math.floor(trial_id * f)

    def _random_point(self, taken: set) -> np.ndarray:
        """A uniform point of the space, repaired onto the budget where predicted over it
        (as the multi-fidelity peers draw theirs: over-budget draws land on the boundary,
        where the best networks are); rejection sampling of feasible points if that
        fails."""
        cost_fn, budget = self._cost_fn(), self.effective_budget
        for _ in range(30):
            x = self.space.sample(1, self.rng, 'uniform')[0]
            if cost_fn is not None and not self.cost_ok(x):
                x = self.space.repair(x, cost_fn, budget)
                if x is None:
                    continue
            x = self.space.canonical(np.asarray(x, dtype=float)[None])[0]
            if self.admissible(x, taken):
                return x
        return self._sample_new(1, taken)[0]

    def _prior_points(self) -> List[np.ndarray]:
        """The configured priors as points of the space (before the budget projection)."""
        if self.priors == 'none':
            return []
        if self.priors in ('auto', 'tiers'):
            return tier_priors(self.space)
        out = []
        for p in self.priors:
            if hasattr(self.space, 'project') and not isinstance(p, (list, tuple, np.ndarray)):
                out.append(self.space.project(p))
            else:
                out.append(self.space.validate(np.asarray(p, dtype=float)))
        return out

    def _initial_design(self) -> np.ndarray:
        """Priors projected onto the budget, then a spread over the feasible region.

        The random part shrinks when priors exist (down to ``n_random_min``), and vanishes
        once ``n_init`` results are already known (a warm start).
        """
        cost_fn, budget = self._cost_fn(), self.effective_budget
        cands: List[np.ndarray] = list(self._prior_points())
        known = [
            t
            for t in self.trials
            if t.ask_index == -1 and t.status in ('complete', 'infeasible') and t.value is not None
        ]
        known.sort(key=lambda t: (self.internal(t.value), t.id))
        cands += [np.asarray(t.x, dtype=float) for t in known[: self.n_prior_trials]]
        priors: List[np.ndarray] = []
        for x in cands:
            if cost_fn is not None:
                x = self.space.project_to_budget(x, cost_fn, budget, up=True)
                if x is None:
                    continue
            if not self.is_new(x):  # already evaluated (e.g. a warm-start trial itself)
                continue
            priors.append(x)
        n_known = len(self.trials)
        n_random = max(0, self.n_init - n_known)
        if priors and n_random:
            n_random = max(min(self.n_random_min, n_random), n_random - len(priors))
        cap = max(0, self.n_init - n_random) if n_known < self.n_init else len(priors)
        avoid = [np.asarray(t.x, dtype=float) for t in self.trials]
        design = self.space.feasible_design(
            min(len(priors), cap) + n_random,
            self.rng,
            cost_fn,
            budget,
            priors=priors[:cap],
            avoid=avoid,
        )
        return design

    def ask(self, n: int = 1) -> List[Trial]:
        self._pending_liars: List[float] = []
        # the GP/SVM matrices are small: BLAS threads only add synchronisation overhead
        # (4x slower on 2 busy cores), so run single-threaded
        with threadpool_limits(limits=1):
            trials = super().ask(n)
        # liars belong to the model-based points, which are the last ones of the batch
        k = len(self._pending_liars)
        for t, liar in zip(trials[len(trials) - k :], self._pending_liars):
            self._liars[t.id] = liar
        return trials

    # ------------------------------------------------------------------ tree
    def _split(self, F: np.ndarray, ys: np.ndarray, idx: np.ndarray) -> Optional[SVC]:
        """KMeans(2) on [x, f(x)], an SVM boundary predicting 1 on the good cluster;
        ``None`` when no useful split exists."""
        Fi, yi = F[idx], ys[idx]
        if np.ptp(yi) <= 1e-12 and np.ptp(Fi, axis=0).max() <= 1e-12:
            return None
        w = max(1.0, math.sqrt(F.shape[1]) / 2)  # let f(x) matter against many dims
        Z = np.column_stack([Fi, w * (yi - yi.mean()) / (yi.std() + 1e-12)])
        km = KMeans(2, n_init=2, random_state=int(self.rng.integers(2**31 - 1))).fit(Z)
        lab = km.labels_
        if lab.min() == lab.max():
            return None
        good = int(np.mean(yi[lab == 1]) < np.mean(yi[lab == 0]))
        target = (lab == good).astype(int)  # 1: good cluster
        svm = SVC(kernel='rbf', gamma='scale', C=10.0)
        # a boundary from at most svm_max_points (every k-th point): the fit is quadratic and
        # the prediction linear in the support vectors, which is what bounds a proposal at
        # 1000 observations; no effect below that size
        step = max(1, math.ceil(len(idx) / self.svm_max_points))
        try:
            svm.fit(Fi[::step], target[::step])
        except ValueError:
            return None
        return svm

    def _select_leaf(
        self, F: np.ndarray, ys: np.ndarray
    ) -> Tuple[np.ndarray, List[Tuple[SVC, int]]]:
        """UCB descent, splitting only the nodes on the path (see module docstring); the
        splits are learnt once per batch (:class:`_BatchModel`)."""
        model = self._batch_model
        idx = np.arange(len(ys))
        path: List[Tuple[SVC, int]] = []
        node: Tuple[int, ...] = ()
        depth = 0
        while len(idx) > self.leaf_size and depth < self.max_depth:
            if node not in model.splits:
                model.splits[node] = self._split(F, ys, idx)
            svm = model.splits[node]
            if svm is None:
                break
            pred = model.node_sides(node, svm, F, idx)
            if pred.min() == pred.max():
                break
            good, bad = idx[pred == 1], idx[pred == 0]
            n_parent = len(idx)
            best_score, best = -np.inf, None
            for side, child in ((1, good), (0, bad)):
                score = -float(np.mean(ys[child])) + 2 * self.cp * math.sqrt(
                    2 * math.sqrt(n_parent) / len(child)
                )
                if score > best_score:
                    best_score, best = score, (side, child)
            side, idx = best
            path.append((svm, side))
            node += (side,)
            depth += 1
        self.last_leaf_depth = depth
        return idx, path

    @staticmethod
    def _in_region(F: np.ndarray, path: Sequence[Tuple[SVC, int]]) -> np.ndarray:
        """Whether each row of ``F`` falls in the leaf at the end of ``path``.

        Each distinct row is predicted once: in a discrete space about half of a candidate
        set repeats (local moves land on the same architecture), and the SVM predictions
        are the largest cost of a proposal at 1000 observations.
        """
        if not path:
            return np.ones(len(F), dtype=bool)
        U, inverse = np.unique(F, axis=0, return_inverse=True)
        ok = np.ones(len(U), dtype=bool)
        for svm, side in path:
            if not ok.any():
                break
            ok[ok] = svm.predict(U[ok]) == side
        return ok[inverse.reshape(-1)]

    # ------------------------------------------------------------------ BO in the leaf
    def _fit_gp(self, F: np.ndarray, y: np.ndarray) -> Optional[GaussianProcessRegressor]:
        """A GP on the batch's first point's hyperparameters where it has them, else fitted."""
        model = self._batch_model
        if model.kernel is not None:
            gp = GaussianProcessRegressor(kernel=model.kernel, normalize_y=False, optimizer=None)
            try:
                return gp.fit(F, y)
            except (np.linalg.LinAlgError, ValueError):
                return None
        gp = self._fit_gp_hyper(F, y)
        if gp is not None:
            model.kernel = gp.kernel_
        return gp

    def _fit_gp_hyper(self, F: np.ndarray, y: np.ndarray) -> Optional[GaussianProcessRegressor]:
        D = F.shape[1]
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
            length_scale=np.full(D, 0.5) if self.ard else 0.5,
            length_scale_bounds=(5e-3, 2e1),
            nu=2.5,
        ) + WhiteKernel(1e-4, (1e-6, 1e-1))
        max_iter = self.gp_max_iter

        def lbfgs(obj_func, theta0, bounds):
            # sklearn's default runs to convergence; a few dozen steps are enough here
            r = minimize(
                obj_func,
                theta0,
                jac=True,
                bounds=bounds,
                method='L-BFGS-B',
                options=dict(maxiter=max_iter),
            )
            return r.x, r.fun

        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=False, optimizer=lbfgs)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ConvergenceWarning)
            try:
                gp.fit(F, y)
            except (np.linalg.LinAlgError, ValueError):
                return None
        return gp

    def _propose_one(
        self, X: np.ndarray, y: np.ndarray, n_real: int, taken: set
    ) -> Tuple[np.ndarray, float]:
        space = self.space
        F = space.features(X)
        ys = _standardise(y)
        leaf, path = self._select_leaf(F, ys)
        # centres: the leaf's best real observations (fall back to the global best)
        real_leaf = leaf[leaf < n_real]
        pool = real_leaf if len(real_leaf) else np.arange(n_real)
        order = pool[np.argsort(y[pool], kind='stable')]
        # GP on the points nearest the centre (the leaf is local; cost stays bounded)
        dist = np.linalg.norm(F - F[order[0]], axis=1)
        train = np.argsort(dist, kind='stable')[: self.gp_max_points]
        y_mean, y_std = float(np.mean(y[train])), float(np.std(y[train])) or 1.0
        gp = self._fit_gp(F[train], (y[train] - y_mean) / y_std)
        # trust-region shape from the GP's length scales (as TuRBO)
        length: Any = self.length
        if gp is not None and F.shape[1] == space.dims:
            ls = np.atleast_1d(gp.kernel_.k1.k2.length_scale).astype(float)
            if ls.size == space.dims:
                w = ls / np.exp(np.mean(np.log(ls)))
                length = self.length * np.clip(w, 0.1, 10.0)
        n_loc = int(round(self.n_candidates * self.local_fraction))
        n_glob = self.n_candidates - n_loc
        cands: List[np.ndarray] = []
        if n_loc:
            # most candidates around the leaf's best point, a tenth each around two runners-up
            centres = order[: max(1, min(3, len(order)))]
            extra = n_loc // 10
            shares = [n_loc - extra * (len(centres) - 1)] + [extra] * (len(centres) - 1)
            for c, k in zip(centres, shares):
                # dense moves (TuRBO) and sparse ones (1-2 dims: hop single ripples)
                k_sparse = int(round(k * self.sparse_fraction))
                if k - k_sparse > 0:
                    cands.append(space.local_samples(X[c], k - k_sparse, self.rng, length))
                if k_sparse > 0:
                    cands.append(space.local_samples(X[c], k_sparse, self.rng, length, n_moves=1.5))
            if space.is_discrete:  # every single-step move of the best: exact local search
                cands.append(space.neighbours(X[order[0]]))
        if n_glob:
            cands.append(space.sample(n_glob, self.rng, 'sobol'))
        C = np.vstack(cands)
        FC = space.features(C)
        inside = self._in_region(FC, path)
        if inside.sum() >= max(10, len(C) // 20):
            C, FC = C[inside], FC[inside]
        if gp is None:
            score = -np.linalg.norm(FC - F[order[0]], axis=1)  # nearest to the best
            mu = np.full(len(C), float(np.min(y)))
        else:
            m, s = gp.predict(FC, return_std=True)
            best = (float(np.min(y[train])) - y_mean) / y_std
            s = np.maximum(s, 1e-9)
            z = (best - m) / s
            score = (best - m) * norm.cdf(z) + s * norm.pdf(z)
            mu = m * y_std + y_mean
        # the first feasible candidate by EI, and the best over-budget ones pulled back onto
        # the budget towards the centre (the best networks are at the boundary)
        centre = X[order[0]]
        anchor = centre if self.cost_ok(centre) else None
        projected: List[np.ndarray] = []
        n_tried = 0
        for i in np.argsort(-score, kind='stable'):
            if self.admissible(C[i], taken):
                if not projected or gp is None:
                    return space.canonical(C[i][None])[0], float(mu[i])
                P = np.vstack([C[i][None]] + projected)
                m, s = gp.predict(space.features(P), return_std=True)
                s = np.maximum(s, 1e-9)
                z = (best - m) / s
                ei = (best - m) * norm.cdf(z) + s * norm.pdf(z)
                j = int(np.argmax(ei))
                return space.canonical(P[j][None])[0], float(m[j] * y_std + y_mean)
            if (
                n_tried < self.n_project
                and self.constraint_fn is not None
                and space.contains(C[i])
                and not self.cost_ok(C[i])
            ):
                n_tried += 1
                cost_fn, budget = self.predicted_cost, self.effective_budget
                if anchor is not None:
                    p = space.line_to_budget(anchor, C[i], cost_fn, budget, steps=5)
                else:
                    p = space.project_to_budget(C[i], cost_fn, budget, up=False, steps=5)
                if p is not None and self.admissible(p, taken):
                    if not any(space.key(p) == space.key(q) for q in projected):
                        projected.append(p)
        if projected:  # nothing feasible among the candidates, but projections are
            return space.canonical(projected[0][None])[0], float(np.mean(y))
        # the leaf is exhausted under the constraint: any new feasible point
        return self._sample_new(1, taken)[0], float(np.mean(y))


__all__ = ['LaMCTSBO', 'BATCH_STRATEGIES']
