"""Baselines behind the same ask/tell contract: random search, regularised evolution, TPE.

They exist to measure LA-MCTS-BO against, so they get the same constraint handling, the
same de-duplication and the same resume guarantees from :class:`Optimizer`.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .base import Optimizer, Trial
from .space import SearchSpace


class RandomSearch(Optimizer):
    """Uniform sampling of feasible, new points (the sanity floor)."""

    name = 'random'

    def _propose(self, n: int) -> np.ndarray:
        return self._sample_new(n)


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
        )

    def population(self) -> List[Trial]:
        # infeasible members keep their measured value (see Optimizer.observations): their
        # feasible mutations are often the best networks near the budget
        done = [
            t
            for t in self.trials
            if t.status in ('complete', 'infeasible') and t.tell_index is not None
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
                    parent = min((pop[i] for i in pick), key=lambda t: self.internal(t.value))
                    child = self.space.mutate(np.asarray(parent.x), self.rng)
                    if self.admissible(child, taken):
                        x = child
                        break
            if x is None:  # initial population, or mutations keep colliding
                x = self._sample_new(1, taken)[0]
            out.append(x)
            taken.add(self.space.key(x))
        return np.array(out)


class TPESearch(Optimizer):
    """Optuna's TPE (optional dependency) through the common interface.

    The Optuna study is rebuilt from the trial list, and a fresh sampler seeded from
    ``(seed, ask counter)`` is used for every ask, so a resumed search continues exactly
    as the uninterrupted one. Proposals that are duplicates or over budget are told to
    Optuna with the worst value seen (so TPE learns to avoid them) and asked again.
    """

    name = 'tpe'

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
                'TPESearch needs optuna, an optional dependency: pip install optuna '
                "(or use method 'lamcts', 'random' or 'evolution')"
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
        return dict(type=type(self).__name__, n_startup_trials=self.n_startup_trials)

    def _study(self) -> Any:
        optuna = self._optuna
        TS = optuna.trial.TrialState
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=self.n_startup_trials,
            seed=int(self.rng.integers(2**31 - 1)),
            constant_liar=True,  # pending trials count as running, so a batch spreads
        )
        study = optuna.create_study(direction='minimize', sampler=sampler)
        for t in self.trials:
            if t.status in ('complete', 'infeasible'):  # see Optimizer.observations
                state, value = TS.COMPLETE, self.internal(t.value)
            else:
                state, value = (TS.RUNNING if t.status == 'pending' else TS.FAIL), None
            study.add_trial(
                optuna.trial.create_trial(
                    params=self._params(t.x), distributions=self._dists, value=value, state=state
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
                study.tell(ot, worst)  # duplicate / over budget: teach TPE to avoid it
            if x is None:
                x = self._sample_new(1, taken)[0]
            out.append(x)
            taken.add(self.space.key(x))
        return np.array(out)


__all__ = ['RandomSearch', 'RegularizedEvolution', 'TPESearch']
