"""Baselines behind the same ask/tell contract: random search, regularised evolution, and
adapters to other libraries' optimisers (Optuna TPE, Optuna GP with constraints,
nevergrad NGOpt), each an optional dependency.

They exist to measure LA-MCTS-BO against, so they get the same constraint handling, the
same de-duplication and the same resume guarantees from :class:`Optimizer`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .base import Optimizer, Trial
from .registry import NAS_OPTIMIZERS
from .space import SearchSpace


@NAS_OPTIMIZERS.register_module()
class RandomSearch(Optimizer):
    """Uniform sampling of feasible, new points (the sanity floor)."""

    name = 'random'

    def _propose(self, n: int) -> np.ndarray:
        return self._sample_new(n)


@NAS_OPTIMIZERS.register_module()
class RegularizedEvolution(Optimizer):
    """Aging evolution (Real et al., AAAI 2019): tournament of ``sample_size`` from the
    ``population_size`` most recently *told* results; the winner's mutation is proposed.

    Age (tell order), not fitness, removes members, which is what makes it robust to noise
    and natural for asynchronous workers.
    """

    name = 'evolution'

    def __init__(
        self,
        space: SearchSpace,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        max_mutation_tries: int = 50,
        **kwargs: Any,
    ) -> None:
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(
                f'population_size={population_size}, sample_size={sample_size}; allowed: '
                'population_size >= 2 and 1 <= sample_size <= population_size'
            )
        super().__init__(space, **kwargs)
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.max_mutation_tries = int(max_mutation_tries)

    def config(self) -> Dict[str, Any]:
        return dict(
            type=type(self).__name__,
            population_size=self.population_size,
            sample_size=self.sample_size,
            max_mutation_tries=self.max_mutation_tries,
        )

    def population(self) -> List[Trial]:
        # infeasible members keep their measured value (see Optimizer.observations): their
        # feasible mutations are often the best networks near the budget
        done = [
            t
            for t in self.trials
            if t.status in ('complete', 'infeasible')
            and t.tell_index is not None
            and self.modelled_value(t) is not None
        ]
        done.sort(key=lambda t: t.tell_index)
        return done[-self.population_size :]

    def _propose(self, n: int) -> np.ndarray:
        out: List[np.ndarray] = []
        taken: set = set()
        for _ in range(n):
            pop = self.population()
            x = None
            if len(self.trials) + len(out) >= self.population_size and len(pop) >= 2:
                for _try in range(self.max_mutation_tries):
                    pick = self.rng.choice(
                        len(pop), size=min(self.sample_size, len(pop)), replace=False
                    )
                    parent = min(
                        (pop[i] for i in pick), key=lambda t: self.internal(self.modelled_value(t))
                    )
                    child = self.space.mutate(np.asarray(parent.x), self.rng)
                    if self.admissible(child, taken):
                        x = child
                        break
            if x is None:  # initial population, or mutations keep colliding
                x = self._sample_new(1, taken)[0]
            out.append(x)
            taken.add(self.space.key(x))
        return np.array(out)


class _OptunaSearch(Optimizer):
    """An Optuna sampler (optional dependency) through the common interface.

    The Optuna study is rebuilt from the trial list, and a fresh sampler seeded from
    the optimiser's random state is used for every ask, so a resumed search continues
    exactly as the uninterrupted one. Proposals that are duplicates or over budget are
    told to Optuna with the worst value seen (so the sampler learns to avoid them) and
    asked again.
    """

    name = 'optuna'

    def __init__(
        self,
        space: SearchSpace,
        *,
        n_startup_trials: int = 10,
        max_retries: int = 10,
        **kwargs: Any,
    ) -> None:
        try:
            import optuna
        except ImportError as e:
            raise ImportError(
                f'{type(self).__name__} needs optuna, an optional dependency: pip install '
                "optuna (or use method 'lamcts', 'random' or 'evolution')"
            ) from e
        super().__init__(space, **kwargs)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.n_startup_trials = int(n_startup_trials)
        self.max_retries = int(max_retries)
        lo, hi = space.bounds
        self._dists: Dict[str, Any] = {}
        specs = getattr(space, 'dim_specs', None)
        for i in range(space.dims):
            if specs is not None and not specs[i].ordinal:  # unordered: TPE's categorical
                self._dists[f'x{i}'] = optuna.distributions.CategoricalDistribution(
                    tuple(range(int(lo[i]), int(hi[i]) + 1))
                )
            elif space.is_discrete:
                self._dists[f'x{i}'] = optuna.distributions.IntDistribution(int(lo[i]), int(hi[i]))
            else:
                self._dists[f'x{i}'] = optuna.distributions.FloatDistribution(
                    float(lo[i]), float(hi[i])
                )

    def config(self) -> Dict[str, Any]:
        return dict(
            type=type(self).__name__,
            n_startup_trials=self.n_startup_trials,
            max_retries=self.max_retries,
        )

    def _sampler(self, seed: int) -> Any:
        raise NotImplementedError

    def _constraint(self, t: Trial) -> Optional[float]:
        """Constraint value for Optuna (<= 0 feasible): the measured cost if any, else the
        predicted one, minus the budget."""
        if self.budget is None:
            return None
        cost = t.measured_cost if t.measured_cost is not None else t.predicted_cost
        return None if cost is None else float(cost) - float(self.budget)

    def _study(self) -> Any:
        optuna = self._optuna
        TS = optuna.trial.TrialState
        sampler = self._sampler(int(self.rng.integers(2**31 - 1)))
        study = optuna.create_study(direction='minimize', sampler=sampler)
        for t in self.trials:
            v = self.modelled_value(t)
            if t.status in ('complete', 'infeasible') and v is not None:  # see observations
                state, value = TS.COMPLETE, self.internal(v)
            else:
                state, value = (TS.RUNNING if t.status == 'pending' else TS.FAIL), None
            c = self._constraint(t)
            study.add_trial(
                optuna.trial.create_trial(
                    params=self._params(t.x),
                    distributions=self._dists,
                    value=value,
                    state=state,
                    user_attrs={} if c is None else {'constraint': c},
                    # what a constrained sampler's after_trial would have stored
                    system_attrs={} if c is None else {'constraints': (c,)},
                )
            )
        return study

    def _params(self, x: Any) -> Dict[str, Any]:
        cast = int if self.space.is_discrete else float
        return {f'x{i}': cast(v) for i, v in enumerate(x)}

    def _propose(self, n: int) -> np.ndarray:
        out: List[np.ndarray] = []
        taken: set = set()
        _, y = self.observations()
        worst = float(np.max(y)) if len(y) else 0.0
        study = self._study()
        while len(out) < n:
            x = None
            for _ in range(self.max_retries):
                ot = study.ask(self._dists)  # stays RUNNING: a pending point for the liar
                cand = np.array([ot.params[f'x{i}'] for i in range(self.space.dims)], dtype=float)
                cand = self.space.canonical(cand[None])[0]
                if self.admissible(cand, taken):
                    x = cand
                    break
                if self.budget is not None:  # over budget by its prediction (or a duplicate)
                    c = self.predicted_cost(cand) - float(self.budget)
                    ot.set_user_attr('constraint', max(c, 1e-6) if self.is_new(cand) else c)
                study.tell(ot, worst)  # duplicate / over budget: teach the sampler to avoid it
            if x is None:
                x = self._sample_new(1, taken)[0]
            out.append(x)
            taken.add(self.space.key(x))
        return np.array(out)


@NAS_OPTIMIZERS.register_module()
class TPESearch(_OptunaSearch):
    """Optuna's TPE with the constant liar (pending trials count, so a batch spreads)."""

    name = 'tpe'

    def _sampler(self, seed: int) -> Any:
        return self._optuna.samplers.TPESampler(
            n_startup_trials=self.n_startup_trials, seed=seed, constant_liar=True
        )


@NAS_OPTIMIZERS.register_module()
class OptunaGPSearch(_OptunaSearch):
    """Optuna's GP sampler (``GPSampler``: GP with log-EI, needs torch), constraint-aware.

    With a budget, every trial carries ``cost - budget`` as its Optuna constraint, so the
    sampler models feasibility too (its ``constraints_func``); without one it is plain GP-BO.
    GPSampler has no batch mechanism, so a batch is ``n`` consecutive asks on the same data
    (duplicates are rejected by the contract and asked again).
    """

    name = 'gp'

    def __init__(self, space: SearchSpace, *, max_retries: int = 3, **kwargs: Any) -> None:
        # each of GPSampler's asks optimises its acquisition (~2 s in 44 dims): after a few
        # rejected proposals a random feasible point is cheaper
        super().__init__(space, max_retries=max_retries, **kwargs)

    def _sampler(self, seed: int) -> Any:
        try:
            import torch  # noqa: F401  (GPSampler's own dependency)
        except ImportError as e:
            raise ImportError('OptunaGPSearch needs torch (Optuna GPSampler uses it)') from e
        cf = None
        if self.budget is not None:
            cf = lambda ft: (float(ft.user_attrs.get('constraint', 0.0)),)  # noqa: E731
        import warnings

        with warnings.catch_warnings():
            # optuna 5 deprecates constraints_func in favour of Trial.set_constraint, which
            # needs a live trial; the study here is rebuilt from stored trials each ask
            warnings.simplefilter('ignore', FutureWarning)
            return self._optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                constraints_func=cf,
                deterministic_objective=False,
            )


@NAS_OPTIMIZERS.register_module()
class NevergradSearch(Optimizer):
    """nevergrad's ``NGOpt`` (optional dependency: ``pip install nevergrad``), ask/tell.

    NGOpt picks its algorithm from the parametrisation and the ``horizon`` (for discrete
    spaces and a few hundred trials: usually a discrete (1+1) / DE variant). One live
    nevergrad optimiser is kept between asks; after ``load()`` it is rebuilt by replaying
    the trial list (a resumed run is valid but not bit-identical to the uninterrupted one).
    Over-budget proposals are told as the worst value seen plus one and asked again.
    """

    name = 'ngopt'

    def __init__(
        self, space: SearchSpace, *, horizon: int = 200, max_retries: int = 50, **kwargs: Any
    ) -> None:
        try:
            import nevergrad as ng
        except ImportError as e:
            raise ImportError(
                'NevergradSearch needs nevergrad, an optional dependency: pip install nevergrad'
            ) from e
        super().__init__(space, **kwargs)
        self._ng = ng
        self.horizon = int(horizon)
        self.max_retries = int(max_retries)
        self._live: Any = None
        self._cands: Dict[int, Any] = {}  # trial id -> nevergrad candidate awaiting its tell

    def config(self) -> Dict[str, Any]:
        return dict(type=type(self).__name__, horizon=self.horizon, max_retries=self.max_retries)

    def _param(self) -> Any:
        ng = self._ng
        lo, hi = self.space.bounds
        if self.space.is_discrete:
            specs = getattr(self.space, 'dim_specs', None)
            args = []
            for i in range(self.space.dims):
                choices = list(range(int(lo[i]), int(hi[i]) + 1))
                if specs is not None and specs[i].ordinal and len(choices) > 1:
                    args.append(ng.p.TransitionChoice(choices))
                else:
                    args.append(ng.p.Choice(choices))
            return ng.p.Tuple(*args)
        return ng.p.Array(shape=(self.space.dims,)).set_bounds(lo, hi)

    def _value(self, x: Any) -> Any:
        if self.space.is_discrete:
            return tuple(int(v) for v in x)
        return np.asarray(x, dtype=float)

    def _optimizer(self) -> Any:
        if self._live is not None:
            return self._live
        param = self._param()
        param.random_state = np.random.RandomState(self.seed)
        opt = self._ng.optimizers.NGOpt(parametrization=param, budget=self.horizon, num_workers=8)
        _, y = self.observations()
        worst = float(np.max(y)) + 1.0 if len(y) else 1.0
        for t in self.trials:  # replay after a load
            p = opt.parametrization.spawn_child(new_value=self._value(t.x))
            if t.status == 'pending':
                self._cands[t.id] = p
            else:
                opt.tell(p, self.internal(t.value) if t.value is not None else worst)
        self._live = opt
        return opt

    def _on_tell(self, trial: Trial) -> None:
        p = self._cands.pop(trial.id, None)
        if p is not None and self._live is not None:
            _, y = self.observations()
            worst = float(np.max(y)) + 1.0 if len(y) else 1.0
            v = self.internal(trial.value) if trial.value is not None else worst
            self._live.tell(p, v)

    def _on_ask(self, trials: Any) -> None:
        for t, p in zip(trials, self._pending):
            self._cands[t.id] = p

    def load_state_dict(self, state: Any) -> None:
        super().load_state_dict(state)
        self._live, self._cands = None, {}

    def _propose(self, n: int) -> np.ndarray:
        opt = self._optimizer()
        _, y = self.observations()
        worst = float(np.max(y)) + 1.0 if len(y) else 1.0
        out: List[np.ndarray] = []
        self._pending: List[Any] = []
        taken: set = set()
        while len(out) < n:
            x, cand_p = None, None
            for _ in range(self.max_retries):
                p = opt.ask()
                cand = np.asarray(p.value, dtype=float).reshape(-1)
                cand = self.space.canonical(cand[None])[0]
                if self.admissible(cand, taken):
                    x, cand_p = cand, p
                    break
                opt.tell(p, worst)
            if x is None:
                x = self._sample_new(1, taken)[0]
                cand_p = opt.parametrization.spawn_child(new_value=self._value(x))
            out.append(x)
            self._pending.append(cand_p)
            taken.add(self.space.key(x))
        return np.array(out)


__all__ = ['RandomSearch', 'RegularizedEvolution', 'TPESearch', 'OptunaGPSearch', 'NevergradSearch']
