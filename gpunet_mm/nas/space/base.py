"""Search spaces behind one numeric interface, so every optimiser works on every space.

A point is always a float vector ``x`` of length ``space.dims``:

* :class:`BoxSpace` (continuous benchmarks such as Ackley): ``x`` holds the coordinates.
* :class:`DiscreteSpace` / :class:`GPUNetSpace`: ``x`` holds, per dimension, the *index*
  of the chosen value in that dimension's list of choices. Ordinal dimensions (layers,
  filters, kernel, expansion, resolution) keep their order, so models and local moves can
  use distances; categorical ones (activation, SE) are unordered.

Optimisers never round a continuous relaxation: discrete spaces generate their own valid
points (:meth:`SearchSpace.sample`, :meth:`SearchSpace.local_samples`,
:meth:`SearchSpace.mutate`), and models see :meth:`SearchSpace.features` in ``[0, 1]``.

This module holds that interface (:class:`SearchSpace`), the sampling helpers and
:class:`InfeasibleSpaceError`; the spaces live in :mod:`.box`, :mod:`.discrete` and
:mod:`.gpunet`.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.stats import qmc

ArrayLike = Union[np.ndarray, Sequence[float]]
CostFn = Callable[[np.ndarray], float]

SAMPLING_METHODS = ('uniform', 'lhs', 'sobol')


class InfeasibleSpaceError(ValueError):
    """No point of the space (or not enough points) satisfies the constraint."""


def _rng(rng: Union[np.random.Generator, int, None]) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _unit_samples(n: int, d: int, rng: np.random.Generator, method: str) -> np.ndarray:
    if method not in SAMPLING_METHODS:
        raise ValueError(f'sampling method: got {method!r}; allowed: {", ".join(SAMPLING_METHODS)}')
    if n <= 0:
        return np.zeros((0, d))
    seed = int(rng.integers(2**31 - 1))
    if method == 'lhs':
        return qmc.LatinHypercube(d, seed=seed).random(n)
    if method == 'sobol':
        m = max(0, math.ceil(math.log2(n)))
        return qmc.Sobol(d, scramble=True, seed=seed).random_base2(m)[:n]
    return rng.random((n, d))


class SearchSpace(ABC):
    """The interface optimisers rely on; see the module docstring for the encoding."""

    #: short name used in configs (``dict(type=...)``)
    type_name = 'SearchSpace'

    @property
    @abstractmethod
    def dims(self) -> int: ...

    @property
    @abstractmethod
    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of ``x`` (indices for discrete dimensions)."""

    @property
    def is_discrete(self) -> bool:
        return False

    # ------------------------------------------------------------ unit cube mapping
    @abstractmethod
    def to_unit(self, X: np.ndarray) -> np.ndarray:
        """Map points to ``[0, 1]^dims`` (what samplers and models see)."""

    @abstractmethod
    def from_unit(self, U: np.ndarray) -> np.ndarray:
        """Map unit-cube points back to valid points (discrete dims snap to a level)."""

    def features(self, X: np.ndarray) -> np.ndarray:
        """Model inputs in ``[0, 1]``; categorical dims with >2 choices are one-hot."""
        return self.to_unit(X)

    # ------------------------------------------------------------ validity and identity
    @abstractmethod
    def contains(self, x: ArrayLike) -> bool:
        """Whether ``x`` is a valid point (inside bounds, on a level for discrete dims)."""

    def validate(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.shape != (self.dims,):
            raise ValueError(f'point: got shape {x.shape}; allowed: ({self.dims},)')
        if not self.contains(x):
            lo, hi = self.bounds
            raise ValueError(
                f'point {x.tolist()} is not in the space (bounds {lo.tolist()} .. {hi.tolist()})'
            )
        return x

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """One representative per distinct object (e.g. zero the dims a choice disables)."""
        return np.asarray(X, dtype=float)

    @abstractmethod
    def key(self, x: ArrayLike) -> str:
        """Short stable identity used for de-duplication (equal objects, equal keys)."""

    def hash(self, x: ArrayLike) -> str:
        """Stable hash of the decoded object (defaults to the key's SHA-256)."""
        return hashlib.sha256(self.key(x).encode()).hexdigest()[:16]

    # ------------------------------------------------------------ objects
    @abstractmethod
    def decode(self, x: ArrayLike) -> Any:
        """The object the objective evaluates (an array, a GPUNetArch, ...)."""

    @abstractmethod
    def encode(self, obj: Any) -> np.ndarray: ...

    def to_json(self, x: ArrayLike) -> Any:
        return [float(v) for v in np.asarray(x, dtype=float)]

    def from_json(self, data: Any) -> np.ndarray:
        return self.validate(np.asarray(data, dtype=float))

    # ------------------------------------------------------------ sampling and moves
    def sample(
        self, n: int, rng: Union[np.random.Generator, int, None] = None, method: str = 'uniform'
    ) -> np.ndarray:
        """``n`` valid points; ``'lhs'``/``'sobol'`` stratify every dimension."""
        rng = _rng(rng)
        return self.canonical(self.from_unit(_unit_samples(n, self.dims, rng, method)))

    @abstractmethod
    def local_samples(
        self,
        center: ArrayLike,
        n: int,
        rng: np.random.Generator,
        length: Union[float, np.ndarray] = 0.2,
        n_moves: Optional[float] = None,
    ) -> np.ndarray:
        """Points in a trust region of relative size ``length`` around ``center``.

        Only a few dimensions move per point (TuRBO-style; about ``n_moves`` of them when
        given), which is what makes local search work in 10-50 dimensions.
        """

    @abstractmethod
    def mutate(self, x: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """A small random change (regularised evolution's mutation)."""

    @abstractmethod
    def neighbours(self, x: ArrayLike) -> np.ndarray:
        """The one-step neighbourhood (axis moves) of ``x``."""

    def repair(self, x: ArrayLike, cost_fn: CostFn, budget: float) -> Optional[np.ndarray]:
        """A point near ``x`` with ``cost_fn <= budget``, or ``None`` if unknown how."""
        return None

    def sample_feasible(
        self,
        n: int,
        rng: Union[np.random.Generator, int, None],
        cost_fn: Optional[CostFn] = None,
        budget: Optional[float] = None,
        method: str = 'uniform',
        max_attempts: int = 20,
    ) -> np.ndarray:
        """``n`` points with ``cost_fn(x) <= budget``: rejection, then repair, then an error.

        Rejection runs at most ``max_attempts`` rounds, so a budget that (almost) nothing
        meets ends with :class:`InfeasibleSpaceError` instead of spinning forever.
        """
        rng = _rng(rng)
        if cost_fn is None or budget is None:
            return self.sample(n, rng, method)
        kept: List[np.ndarray] = []
        last = np.zeros((0, self.dims))
        for attempt in range(max_attempts):
            X = self.sample(max(n, 16), rng, method if attempt == 0 else 'uniform')
            last = X
            for x in X:
                if cost_fn(x) <= budget:
                    kept.append(x)
                    if len(kept) == n:
                        return np.array(kept)
            if attempt >= 1 and not kept:
                break  # nothing at all so far: go straight to repair
        for x in last:
            fixed = self.repair(x, cost_fn, budget)
            if fixed is None:
                break
            kept.append(fixed)
            if len(kept) == n:
                return np.array(kept)
        raise InfeasibleSpaceError(
            f'only {len(kept)} of {n} sampled points meet the budget {budget} after '
            f'{max_attempts} attempts; the budget is probably too tight for this space'
        )

    # ------------------------------------------------------------ the budget boundary
    def interpolate(self, a: ArrayLike, b: ArrayLike, t: float) -> np.ndarray:
        """The valid point a fraction ``t`` of the way from ``a`` to ``b``."""
        ua, ub = self.to_unit(np.asarray(a, dtype=float)), self.to_unit(np.asarray(b, dtype=float))
        return self.canonical(self.from_unit(ua + float(t) * (ub - ua))[None])[0]

    def corner(self, x: ArrayLike, upper: bool) -> np.ndarray:
        """``x`` with every ordered dimension at its minimum (or maximum); unordered ones kept.

        The two ends of the "make it smaller / larger" line used to project onto a budget:
        cost is (close to) monotone along it for sizes such as layers, widths, resolution.
        """
        lo, hi = self.bounds
        return self.canonical(np.array(hi if upper else lo, dtype=float)[None])[0]

    def line_to_budget(
        self, a: ArrayLike, b: ArrayLike, cost_fn: CostFn, budget: float, steps: int = 8
    ) -> np.ndarray:
        """The point farthest from ``a`` towards ``b`` that fits the budget (``a`` must fit).

        Bisection with ``steps`` halvings: at most ``steps + 1`` cost evaluations, always
        terminates (no rejection loop), and the result is feasible by construction.
        """
        a = np.asarray(a, dtype=float)
        if cost_fn(b) <= budget:
            return np.array(b, dtype=float)
        lo_t, hi_t, best = 0.0, 1.0, a.copy()
        for _ in range(int(steps)):
            t = (lo_t + hi_t) / 2
            cand = self.interpolate(a, b, t)
            if cost_fn(cand) <= budget:
                lo_t, best = t, cand
            else:
                hi_t = t
        return best

    def project_to_budget(
        self,
        x: ArrayLike,
        cost_fn: CostFn,
        budget: float,
        up: bool = True,
        steps: int = 8,
    ) -> Optional[np.ndarray]:
        """Move ``x`` onto the budget boundary: shrink it if over, grow it if ``up`` and under.

        The best architectures sit at the latency budget, so a design or a candidate well
        inside it wastes a trial. Over budget, the point moves along the line to its own
        :meth:`corner` (smallest sizes, same activation/SE choices; if even that misses, the
        space's smallest point); under it, towards the largest sizes. ``None`` when not
        even the smallest point fits.
        """
        x = np.asarray(x, dtype=float)
        if cost_fn(x) > budget:
            low = self.corner(x, upper=False)
            if cost_fn(low) > budget:
                low = self.canonical(np.array(self.bounds[0], dtype=float)[None])[0]
                if cost_fn(low) > budget:
                    return None
            return self.line_to_budget(low, x, cost_fn, budget, steps)
        if up:
            return self.line_to_budget(x, self.corner(x, upper=True), cost_fn, budget, steps)
        return x.copy()

    def feasible_design(
        self,
        n: int,
        rng: Union[np.random.Generator, int, None],
        cost_fn: Optional[CostFn] = None,
        budget: Optional[float] = None,
        priors: Sequence[ArrayLike] = (),
        avoid: Sequence[ArrayLike] = (),
        boundary_fraction: float = 0.5,
        pool_factor: int = 8,
    ) -> np.ndarray:
        """``n`` distinct feasible points spread over the *feasible* region, priors first.

        Feasible by construction: a stratified (LHS) pool of ``pool_factor * n`` points
        is projected onto the budget (points over it shrink to the boundary, and a
        ``boundary_fraction`` of those under it grow to it), then the points are picked
        greedily farthest from each other, from the ``priors`` and from ``avoid`` (points
        already evaluated). Not a box design pushed inside afterwards: every candidate
        already fits, so the spread is measured where the search can go. Each projection
        costs at most ~10 cost evaluations; nothing loops on rejection.

        ``priors`` (e.g. projected published tiers) are taken as they are, in order, up
        to ``n``; the spread part fills the rest. Raises :class:`InfeasibleSpaceError`
        when the budget admits no point at all.
        """
        rng = _rng(rng)
        out: List[np.ndarray] = []
        keys = {self.key(a) for a in avoid}
        for p in priors:
            p = self.canonical(np.asarray(p, dtype=float)[None])[0]
            k = self.key(p)
            if len(out) < n and k not in keys and (cost_fn is None or cost_fn(p) <= budget):
                out.append(p)
                keys.add(k)
        need = n - len(out)
        if need <= 0:
            return np.array(out).reshape(-1, self.dims)
        constrained = cost_fn is not None and budget is not None
        if not constrained and not out and not len(avoid):
            pool = self.sample(max(need, 1), rng, 'lhs')  # nothing to avoid: plain LHS
            cand = [x for x in pool if self.key(x) not in keys]
            return np.array(cand[:need]).reshape(-1, self.dims)
        pool_raw = self.sample(max(pool_factor * need, 16), rng, 'lhs')
        pool: List[np.ndarray] = []
        for x in pool_raw:
            if constrained:
                grow = rng.random() < boundary_fraction
                x = self.project_to_budget(x, cost_fn, budget, up=grow)
                if x is None:
                    raise InfeasibleSpaceError(
                        f'no point of the space meets the budget {budget} (not even the '
                        'smallest one)'
                    )
            k = self.key(x)
            if k not in keys:
                keys.add(k)
                pool.append(x)
        if not pool:
            return np.array(out).reshape(-1, self.dims)
        P = self.to_unit(np.array(pool))
        ref = [self.to_unit(np.asarray(a, dtype=float)) for a in list(avoid) + out]
        if ref:
            dmin = np.min(np.linalg.norm(P[:, None, :] - np.array(ref)[None, :, :], axis=2), axis=1)
        else:
            dmin = np.full(len(P), np.inf)
        picked = np.zeros(len(P), dtype=bool)
        for _ in range(min(need, len(P))):
            i = int(np.argmax(np.where(picked, -1.0, dmin)))
            picked[i] = True
            out.append(pool[i])
            dmin = np.minimum(dmin, np.linalg.norm(P - P[i], axis=1))
        return np.array(out).reshape(-1, self.dims)

    # ------------------------------------------------------------ config
    @abstractmethod
    def config(self) -> Dict[str, Any]:
        """A plain dict that rebuilds this space through :func:`build_space`."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(json.dumps(self.config(), sort_keys=True))

    def __repr__(self) -> str:
        return f'{type(self).__name__}(dims={self.dims})'
