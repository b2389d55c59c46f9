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

The GPUNet stage table (the paper's classification space) is data in
:data:`CLASSIFICATION_STAGES`; :class:`GPUNetSpace` decodes points into
:class:`~gpunet_mm.models.arch_spec.GPUNetArch`, the format shared with the hub tiers.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.stats import qmc

from gpunet_mm.models.arch_spec import BlockRow, GPUNetArch

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


# ====================================================================== continuous box
class BoxSpace(SearchSpace):
    """A continuous box ``[lower, upper]^d`` (benchmark functions, hyper-parameters)."""

    type_name = 'BoxSpace'

    def __init__(
        self,
        lower: Union[float, Sequence[float]],
        upper: Union[float, Sequence[float]],
        dims: Optional[int] = None,
    ) -> None:
        lo = np.atleast_1d(np.asarray(lower, dtype=float))
        hi = np.atleast_1d(np.asarray(upper, dtype=float))
        if dims is not None:
            if not isinstance(dims, int) or dims < 1:
                raise ValueError(f'BoxSpace dims: got {dims!r}; allowed: integers >= 1')
            lo = np.broadcast_to(lo, (dims,)).copy() if lo.size == 1 else lo
            hi = np.broadcast_to(hi, (dims,)).copy() if hi.size == 1 else hi
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
            raise ValueError(
                f'BoxSpace bounds: got lower {lo.tolist()} and upper {hi.tolist()}; allowed: '
                'two non-empty vectors of equal length (or scalars with dims=)'
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(f'BoxSpace bounds must be finite; got {lo.tolist()} .. {hi.tolist()}')
        bad = np.flatnonzero(lo >= hi)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f'BoxSpace dim {i}: lower {lo[i]} >= upper {hi[i]}; allowed: lower < upper'
            )
        self._lo, self._hi = lo, hi

    @property
    def dims(self) -> int:
        return int(self._lo.size)

    @property
    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        return self._lo.copy(), self._hi.copy()

    def to_unit(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=float) - self._lo) / (self._hi - self._lo)

    def from_unit(self, U: np.ndarray) -> np.ndarray:
        return self._lo + np.clip(np.asarray(U, dtype=float), 0.0, 1.0) * (self._hi - self._lo)

    def contains(self, x: ArrayLike) -> bool:
        x = np.asarray(x, dtype=float)
        return bool(
            x.shape == (self.dims,)
            and np.all(np.isfinite(x))
            and np.all(x >= self._lo)
            and np.all(x <= self._hi)
        )

    def key(self, x: ArrayLike) -> str:
        # 12 significant digits: distinct for optimisation purposes, stable through JSON
        return ','.join(f'{v:.12g}' for v in np.asarray(x, dtype=float))

    def decode(self, x: ArrayLike) -> np.ndarray:
        return np.array(x, dtype=float)

    def encode(self, obj: Any) -> np.ndarray:
        return self.validate(np.asarray(obj, dtype=float))

    def local_samples(
        self,
        center: ArrayLike,
        n: int,
        rng: np.random.Generator,
        length: Union[float, np.ndarray] = 0.2,
        n_moves: Optional[float] = None,
    ) -> np.ndarray:
        c = self.to_unit(np.asarray(center, dtype=float))
        d = self.dims
        length = np.broadcast_to(np.asarray(length, dtype=float), (d,))
        lo = np.clip(c - length / 2, 0.0, 1.0)
        hi = np.clip(c + length / 2, 0.0, 1.0)
        pert = lo + (hi - lo) * rng.random((n, d))
        mask = rng.random((n, d)) <= min(1.0, (20.0 if n_moves is None else n_moves) / d)
        rows = np.flatnonzero(~mask.any(axis=1))
        mask[rows, rng.integers(0, d, size=rows.size)] = True
        return self.from_unit(np.where(mask, pert, c))

    def mutate(self, x: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        u = self.to_unit(np.asarray(x, dtype=float))
        mask = rng.random(self.dims) < 1.0 / self.dims
        mask[rng.integers(self.dims)] = True
        u = np.where(mask, u + 0.1 * rng.standard_normal(self.dims), u)
        return self.from_unit(u)

    def neighbours(self, x: ArrayLike, step: float = 0.05) -> np.ndarray:
        u = self.to_unit(np.asarray(x, dtype=float))
        eye = np.eye(self.dims) * step
        return self.from_unit(np.vstack([u + eye, u - eye]))

    def config(self) -> Dict[str, Any]:
        return dict(type=self.type_name, lower=self._lo.tolist(), upper=self._hi.tolist())


# ====================================================================== discrete
@dataclass(frozen=True)
class Dim:
    """One discrete dimension: a name, its choices (in order) and whether order matters."""

    name: str
    choices: Tuple[Any, ...]
    ordinal: bool = True

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ValueError(f'dim {self.name!r}: no choices; allowed: at least one value')
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f'dim {self.name!r}: repeated choices {list(self.choices)}')

    @property
    def levels(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if c == value:
                return i
        raise ValueError(f'{self.name}: got {value!r}; allowed: {list(self.choices)}')


class DiscreteSpace(SearchSpace):
    """A product of finite dimensions; ``x`` holds choice indices as floats."""

    type_name = 'DiscreteSpace'

    def __init__(self, dims: Sequence[Dim]) -> None:
        dims = [d if isinstance(d, Dim) else Dim(**d) for d in dims]
        if not dims:
            raise ValueError('DiscreteSpace: no dimensions; allowed: at least one Dim')
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise ValueError(f'DiscreteSpace: repeated dim names in {names}')
        self.dim_specs: Tuple[Dim, ...] = tuple(dims)
        self._levels = np.array([d.levels for d in dims], dtype=float)
        self._ordinal = np.array([d.ordinal for d in dims], dtype=bool)
        self._index = {d.name: i for i, d in enumerate(dims)}
        self._onehot = [i for i, d in enumerate(dims) if not d.ordinal and d.levels > 2]

    @property
    def dims(self) -> int:
        return len(self.dim_specs)

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.dims), self._levels - 1

    @property
    def size(self) -> int:
        """Number of index vectors (an upper bound on distinct objects)."""
        return int(np.prod([d.levels for d in self.dim_specs], dtype=object))

    def dim(self, name: str) -> int:
        if name not in self._index:
            raise ValueError(f'dim name: got {name!r}; allowed: {list(self._index)}')
        return self._index[name]

    def to_unit(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return X / np.maximum(self._levels - 1, 1)

    def from_unit(self, U: np.ndarray) -> np.ndarray:
        U = np.clip(np.asarray(U, dtype=float), 0.0, 1.0)
        # equal-width bins: uniform/LHS in U gives uniform/stratified choices
        return np.minimum(np.floor(U * self._levels), self._levels - 1)

    def features(self, X: np.ndarray) -> np.ndarray:
        U = self.to_unit(X)
        if not self._onehot:
            return U
        X = np.asarray(X, dtype=float)
        extra = [np.eye(int(self._levels[i]))[X[..., i].astype(int)] for i in self._onehot]
        keep = [i for i in range(self.dims) if i not in self._onehot]
        return np.concatenate([U[..., keep]] + extra, axis=-1)

    def contains(self, x: ArrayLike) -> bool:
        x = np.asarray(x, dtype=float)
        return bool(
            x.shape == (self.dims,)
            and np.all(np.isfinite(x))
            and np.all(x == np.round(x))
            and np.all(x >= 0)
            and np.all(x <= self._levels - 1)
        )

    def key(self, x: ArrayLike) -> str:
        x = self.canonical(np.asarray(x, dtype=float)[None])[0]
        return '.'.join(str(int(v)) for v in x)

    def values(self, x: ArrayLike) -> Dict[str, Any]:
        """The chosen value of every dimension, by name."""
        x = np.asarray(x, dtype=float)
        return {d.name: d.choices[int(x[i])] for i, d in enumerate(self.dim_specs)}

    def from_values(self, values: Mapping[str, Any]) -> np.ndarray:
        missing = set(self._index) - set(values)
        if missing:
            raise ValueError(f'values miss dims {sorted(missing)}')
        return np.array([float(d.index(values[d.name])) for d in self.dim_specs])

    def decode(self, x: ArrayLike) -> Any:
        return self.values(self.validate(x))

    def encode(self, obj: Any) -> np.ndarray:
        return self.from_values(obj)

    def to_json(self, x: ArrayLike) -> Any:
        return {k: (v.item() if hasattr(v, 'item') else v) for k, v in self.values(x).items()}

    def from_json(self, data: Any) -> np.ndarray:
        return self.from_values(data)

    def local_samples(
        self,
        center: ArrayLike,
        n: int,
        rng: np.random.Generator,
        length: Union[float, np.ndarray] = 0.2,
        n_moves: Optional[float] = None,
    ) -> np.ndarray:
        c = np.asarray(center, dtype=float)
        d = self.dims
        length = np.broadcast_to(np.asarray(length, dtype=float), (d,))
        # how many dims move: 1 + Poisson(4 * mean length), i.e. about 1..7
        lam = 4.0 * float(np.mean(length)) if n_moves is None else max(0.0, n_moves - 1)
        k = 1 + rng.poisson(lam, size=n)
        k = np.minimum(k, d)
        radius = np.maximum(1, np.round(length * (self._levels - 1) / 2)).astype(int)
        out = np.repeat(c[None], n, axis=0)
        movable = np.flatnonzero(self._levels > 1)
        if movable.size == 0:
            return out
        for r in range(n):
            for i in rng.choice(movable, size=min(int(k[r]), movable.size), replace=False):
                out[r, i] = self._move(c[i], i, rng, radius[i])
        return self.canonical(out)

    def _move(self, v: float, i: int, rng: np.random.Generator, radius: int) -> float:
        levels = int(self._levels[i])
        if not self._ordinal[i]:
            other = rng.integers(levels - 1)
            return float(other if other < v else other + 1)
        step = int(rng.integers(1, radius + 1)) * (1 if rng.random() < 0.5 else -1)
        new = v + step
        if new < 0 or new > levels - 1:
            new = v - step  # reflect so the point still moves
        return float(min(max(new, 0), levels - 1))

    def mutate(self, x: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=float)
        movable = np.flatnonzero(self._levels > 1)
        if movable.size == 0:
            return x
        i = int(rng.choice(movable))
        other = rng.integers(int(self._levels[i]) - 1)
        x[i] = float(other if other < x[i] else other + 1)  # any other value, as in Real et al.
        return self.canonical(x[None])[0]

    def neighbours(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = []
        for i in range(self.dims):
            levels = int(self._levels[i])
            if self._ordinal[i]:
                cand = [x[i] - 1, x[i] + 1]
            else:
                cand = [v for v in range(levels) if v != x[i]]
            for v in cand:
                if 0 <= v <= levels - 1:
                    y = x.copy()
                    y[i] = v
                    out.append(y)
        if not out:
            return np.zeros((0, self.dims))
        X = self.canonical(np.array(out))
        keys, uniq = {self.key(x)}, []
        for y in X:
            k = self.key(y)
            if k not in keys:
                keys.add(k)
                uniq.append(y)
        return np.array(uniq).reshape(-1, self.dims)

    def interpolate(self, a: ArrayLike, b: ArrayLike, t: float) -> np.ndarray:
        """Ordered dims round ``a + t (b - a)``; unordered ones take ``b``'s at ``t >= 0.5``."""
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        t = float(t)
        x = np.where(self._ordinal, np.round(a + t * (b - a)), b if t >= 0.5 else a)
        return self.canonical(x[None])[0]

    def corner(self, x: ArrayLike, upper: bool) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        end = self._levels - 1 if upper else np.zeros(self.dims)
        return self.canonical(np.where(self._ordinal, end, x)[None])[0]

    def repair(self, x: ArrayLike, cost_fn: CostFn, budget: float) -> Optional[np.ndarray]:
        """Shrink the ordinal choices of ``x`` towards their minimum until the cost fits.

        Bisection on ``t`` in ``x_t = floor(t * x)`` (ordinal dims only): at most ~12 cost
        evaluations, always terminates, and keeps the point's categorical choices when the
        smallest ordinal setting with them fits; otherwise all categoricals go to their
        first choice. ``None`` when even the smallest point misses the budget.
        """
        x = np.asarray(x, dtype=float)
        if cost_fn(x) <= budget:
            return x.copy()
        floor = np.where(self._ordinal, 0.0, x)
        if cost_fn(self.canonical(floor[None])[0]) > budget:
            x = np.where(self._ordinal, x, 0.0)
            floor = np.zeros(self.dims)
            if cost_fn(self.canonical(floor[None])[0]) > budget:
                return None
        lo_t, hi_t = 0.0, 1.0
        best = self.canonical(floor[None])[0]
        for _ in range(10):
            t = (lo_t + hi_t) / 2
            cand = self.canonical(np.where(self._ordinal, np.floor(t * x), x)[None])[0]
            if cost_fn(cand) <= budget:
                lo_t, best = t, cand
            else:
                hi_t = t
        return best

    def config(self) -> Dict[str, Any]:
        return dict(
            type=self.type_name,
            dims=[
                dict(name=d.name, choices=list(d.choices), ordinal=d.ordinal)
                for d in self.dim_specs
            ],
        )


# ====================================================================== GPUNet
@dataclass(frozen=True)
class StageSpec:
    """One row of the paper's stage table; ``(min, max, step)`` ranges become choice lists.

    ``expansions``/``se`` are empty for plain conv stages. A stage whose ``layers`` range
    includes 0 may be dropped by the search (its other choices are then inactive).
    """

    stage: int
    block: str
    stride: int
    layers: Tuple[int, int]
    filters: Tuple[int, int, int]
    kernels: Tuple[int, ...] = (3, 5)
    expansions: Tuple[int, ...] = (2, 3, 4, 5, 6)
    acts: Tuple[str, ...] = ('relu', 'swish')
    se: Tuple[bool, ...] = (False, True)

    def __post_init__(self) -> None:
        where = f'stage {self.stage}'
        if self.block not in ('conv', 'fused', 'irb'):
            raise ValueError(f'{where} block: got {self.block!r}; allowed: conv, fused, irb')
        if self.stride not in (1, 2):
            raise ValueError(f'{where} stride: got {self.stride!r}; allowed: 1, 2')
        lo, hi = self.layers
        if lo < 0 or lo > hi:
            raise ValueError(f'{where} layers: got [{lo}, {hi}]; allowed: 0 <= min <= max')
        fmin, fmax, fstep = self.filters
        if fmin <= 0 or fstep <= 0 or fmin > fmax:
            raise ValueError(
                f'{where} filters: got [{fmin}, {fmax}, {fstep}]; allowed: 0 < min <= max, step > 0'
            )
        for name in ('kernels', 'acts'):
            if not getattr(self, name):
                raise ValueError(f'{where} {name}: empty; allowed: at least one choice')
        if self.block != 'conv' and (not self.expansions or not self.se):
            raise ValueError(f'{where}: {self.block} stages need expansions and se choices')
        if self.block == 'conv' and any(self.se):
            raise ValueError(f"{where} se: got {list(self.se)}; allowed: (False,) for 'conv'")

    @property
    def layer_choices(self) -> Tuple[int, ...]:
        return tuple(range(self.layers[0], self.layers[1] + 1))

    @property
    def filter_choices(self) -> Tuple[int, ...]:
        fmin, fmax, fstep = self.filters
        return tuple(range(fmin, fmax + 1, fstep))


def _stage(stage, block, stride, layers, filters, **kw) -> StageSpec:
    if block == 'conv':
        kw.setdefault('expansions', ())
        kw.setdefault('se', (False,))
    return StageSpec(stage, block, stride, tuple(layers), tuple(filters), **kw)


#: The paper's classification space (GPUNet, CVPR 2022, table of stages 0-8).
#: Stage 8 (conv1x1 1792 + pool + fc) is fixed and lives in ``TAIL_CHANNELS``.
CLASSIFICATION_STAGES: Tuple[StageSpec, ...] = (
    _stage(0, 'conv', 2, (1, 1), (24, 32, 8)),
    _stage(1, 'conv', 1, (1, 4), (24, 32, 8)),
    _stage(2, 'fused', 2, (1, 8), (32, 80, 16)),
    _stage(3, 'fused', 2, (1, 8), (48, 112, 16)),
    _stage(4, 'irb', 2, (1, 10), (96, 192, 16)),
    _stage(5, 'irb', 1, (0, 15), (112, 224, 16)),
    _stage(6, 'irb', 2, (1, 15), (128, 416, 32)),
    _stage(7, 'irb', 1, (0, 15), (256, 832, 64)),
)
TAIL_CHANNELS = 1792
#: input resolution 224..512 step 32 (classification)
CLASSIFICATION_RESOLUTIONS: Tuple[int, ...] = tuple(range(224, 513, 32))
#: default detection input sizes (the neck/head come from the base detector config)
DETECTION_RESOLUTIONS: Tuple[int, ...] = (320, 384, 448, 512)
VARIANTS = ('classification', 'detection')
_STAGE_FIELDS = set(StageSpec.__dataclass_fields__)


class GPUNetSpace(DiscreteSpace):
    """The GPUNet search space; points decode to validated :class:`GPUNetArch` objects.

    Build from a config: ``dict(type='GPUNetSpace', variant='detection',
    resolutions=[320, 384])``; ``stages=[dict(stage=7, layers=(0, 4))]`` overrides table
    rows by stage number. Per stage the dims are ``s{i}.layers``, ``s{i}.filters``,
    ``s{i}.kernel``, ``s{i}.expansion``, ``s{i}.act``, ``s{i}.se`` (only those with more
    than one choice), then ``resolution``.
    """

    type_name = 'GPUNetSpace'

    def __init__(
        self,
        variant: str = 'classification',
        resolutions: Optional[Sequence[int]] = None,
        stages: Optional[Sequence[Union[StageSpec, Mapping[str, Any]]]] = None,
        tail_channels: int = TAIL_CHANNELS,
        name_prefix: str = 'gpunet-nas',
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(
                f'GPUNetSpace variant: got {variant!r}; allowed: {", ".join(VARIANTS)}'
            )
        self.variant = variant
        if resolutions is None:
            resolutions = (
                CLASSIFICATION_RESOLUTIONS if variant == 'classification' else DETECTION_RESOLUTIONS
            )
        resolutions = tuple(int(r) for r in resolutions)
        if not resolutions or any(r <= 0 for r in resolutions):
            raise ValueError(
                f'GPUNetSpace resolutions: got {list(resolutions)}; allowed: a non-empty '
                'list of positive integers'
            )
        self.resolutions = tuple(sorted(set(resolutions)))
        self.stages = self._merge_stages(stages)
        # validate every choice now (the backbone's rules), not at the first ask(): a stem
        # that may vanish or an even kernel would otherwise surface mid-search
        if self.stages[0].layers[0] < 1:
            raise ValueError(
                f'stage {self.stages[0].stage} layers: got {list(self.stages[0].layers)}; '
                'allowed: min >= 1 (the first stage is the stride-2 stem every arch needs)'
            )
        for s in self.stages:
            for field_name, arg, values in (
                ('kernels', 'kernel', s.kernels),
                ('filters', 'out_channels', s.filter_choices),
                ('expansions', 'expansion', s.expansions or (1,)),
                ('acts', 'act', s.acts),
                ('se', 'se', [bool(v) if v in (0, 1) else v for v in s.se]),
            ):
                for v in values:
                    kw = dict(type=s.block, kernel=3, out_channels=8, stride=s.stride, stage=0)
                    try:
                        BlockRow(**{**kw, arg: v}).validate()
                        if arg == 'expansion' and v != int(v):  # decode() casts to int
                            raise ValueError(f'got {v!r}; allowed: integer expansion ratios')
                    except (ValueError, TypeError) as e:
                        raise ValueError(f'GPUNetSpace stage {s.stage} {field_name}: {e}') from e
        if isinstance(tail_channels, bool) or int(tail_channels) <= 0:
            raise ValueError(f'tail_channels: got {tail_channels!r}; allowed: integers > 0')
        self.tail_channels = int(tail_channels)
        self.name_prefix = name_prefix
        self._stage_overrides = [asdict(s) for s in self.stages]

        dims: List[Dim] = []
        self._fixed: Dict[str, Any] = {}
        for s in self.stages:
            p = f's{s.stage}.'
            for name, choices, ordinal in (
                ('layers', s.layer_choices, True),
                ('filters', s.filter_choices, True),
                ('kernel', tuple(s.kernels), True),
                ('expansion', tuple(s.expansions) or (1,), True),
                ('act', tuple(s.acts), False),
                ('se', tuple(bool(v) for v in s.se), False),
            ):
                if len(choices) > 1:
                    dims.append(Dim(p + name, choices, ordinal))
                else:
                    self._fixed[p + name] = choices[0]
        if len(self.resolutions) > 1:
            dims.append(Dim('resolution', self.resolutions, True))
        else:
            self._fixed['resolution'] = self.resolutions[0]
        super().__init__(dims)
        # dims disabled when a stage has 0 layers (for canonical keys)
        self._inactive: List[Tuple[int, List[int]]] = []
        for s in self.stages:
            if s.layers[0] == 0:
                li = self._index[f's{s.stage}.layers']
                others = [
                    self._index[k]
                    for k in self._index
                    if k.startswith(f's{s.stage}.') and not k.endswith('.layers')
                ]
                self._inactive.append((li, others))

    @staticmethod
    def _merge_stages(stages) -> Tuple[StageSpec, ...]:
        base = {s.stage: s for s in CLASSIFICATION_STAGES}
        if stages is None:
            return tuple(base.values())
        out = dict(base)
        for s in stages:
            if isinstance(s, StageSpec):
                out[s.stage] = s
                continue
            s = dict(s)
            if 'stage' not in s:
                raise ValueError(f'stage override {s!r} has no "stage" key')
            unknown = set(s) - _STAGE_FIELDS
            if unknown:
                raise ValueError(
                    f'stage override keys: got {sorted(unknown)}; allowed: {sorted(_STAGE_FIELDS)}'
                )
            old = asdict(out[s['stage']]) if s['stage'] in out else {}
            merged = {**old, **s}
            for k, v in merged.items():
                if isinstance(v, list):
                    merged[k] = tuple(v)
            out[s['stage']] = StageSpec(**merged)
        if 0 not in out or out[0].stride != 2:
            raise ValueError('stage 0 must exist and be the stride-2 stem')
        return tuple(out[k] for k in sorted(out))

    def canonical(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=float)
        squeeze = X.ndim == 1
        X = np.atleast_2d(X)
        for li, others in self._inactive:
            off = X[:, li] == 0  # index 0 is "0 layers" when the range starts at 0
            if others:
                X[np.ix_(off, others)] = 0.0
        return X[0] if squeeze else X

    def _value(self, vals: Mapping[str, Any], name: str) -> Any:
        return vals[name] if name in vals else self._fixed[name]

    def decode(self, x: ArrayLike) -> GPUNetArch:
        x = self.validate(x)
        vals = self.values(x)
        rows = []
        for s in self.stages:
            p = f's{s.stage}.'
            num = int(self._value(vals, p + 'layers'))
            if num == 0:
                continue
            rows.append(
                BlockRow(
                    type=s.block,
                    kernel=int(self._value(vals, p + 'kernel')),
                    out_channels=int(self._value(vals, p + 'filters')),
                    num=num,
                    stride=s.stride,
                    expansion=int(self._value(vals, p + 'expansion')) if s.block != 'conv' else 1,
                    act=str(self._value(vals, p + 'act')),
                    se=bool(self._value(vals, p + 'se')) if s.block != 'conv' else False,
                    stage=s.stage,
                )
            )
        return GPUNetArch(
            name=f'{self.name_prefix}-{self.key_hash(x)[:8]}',
            rows=tuple(rows),
            tail_channels=(self.tail_channels,),
            resolution=int(self._value(vals, 'resolution')),
            family='gpunet',
        )

    def key_hash(self, x: ArrayLike) -> str:
        return hashlib.sha256(self.key(x).encode()).hexdigest()

    def hash(self, x: ArrayLike) -> str:
        """The decoded architecture's :meth:`GPUNetArch.structural_hash`."""
        return self.decode(x).structural_hash()

    def encode(self, obj: Union[GPUNetArch, Mapping[str, Any]]) -> np.ndarray:
        arch = obj if isinstance(obj, GPUNetArch) else GPUNetArch.from_dict(obj)
        if arch.family != 'gpunet':
            raise ValueError(f"arch.family: got {arch.family!r}; allowed: 'gpunet' in this space")
        if tuple(arch.tail_channels) != (self.tail_channels,):
            raise ValueError(
                f'arch.tail_channels: got {list(arch.tail_channels)}; allowed: '
                f'[{self.tail_channels}] in this space'
            )
        by_stage: Dict[int, BlockRow] = {}
        for row in arch.rows:
            if row.stage in by_stage:
                raise ValueError(
                    f'arch {arch.name!r}: stage {row.stage} has several rows; this space has '
                    'one row per stage (all layers of a stage share their choices)'
                )
            by_stage[row.stage] = row
        known = {s.stage for s in self.stages}
        if set(by_stage) - known:
            raise ValueError(
                f'arch {arch.name!r} stages: got {sorted(by_stage)}; allowed: {sorted(known)}'
            )
        vals: Dict[str, Any] = {}
        for s in self.stages:
            p = f's{s.stage}.'
            row = by_stage.get(s.stage)
            if row is None:
                vals[p + 'layers'] = 0
                vals[p + 'filters'] = s.filter_choices[0]
                vals[p + 'kernel'] = s.kernels[0]
                vals[p + 'expansion'] = (s.expansions or (1,))[0]
                vals[p + 'act'] = s.acts[0]
                vals[p + 'se'] = bool(s.se[0])
                continue
            if row.type != s.block or row.stride != s.stride:
                raise ValueError(
                    f'arch {arch.name!r} stage {s.stage}: got {row.type} stride {row.stride}; '
                    f'allowed: {s.block} stride {s.stride}'
                )
            vals[p + 'layers'] = row.num
            vals[p + 'filters'] = row.out_channels
            vals[p + 'kernel'] = row.kernel
            vals[p + 'expansion'] = int(row.expansion) if s.block != 'conv' else 1
            if s.block != 'conv' and float(row.expansion) != int(row.expansion):
                raise ValueError(
                    f'arch stage {s.stage} expansion: got {row.expansion}; allowed: '
                    f'{list(s.expansions)}'
                )
            vals[p + 'act'] = row.act
            vals[p + 'se'] = bool(row.se)
        vals['resolution'] = arch.resolution
        for name, v in self._fixed.items():
            if vals[name] != v:
                raise ValueError(f'{name}: got {vals[name]!r}; allowed: [{v!r}]')
        x = self.from_values({k: v for k, v in vals.items() if k in self._index})
        return self.canonical(x)

    def project(self, obj: Union[GPUNetArch, Mapping[str, Any]]) -> np.ndarray:
        """The nearest point of this space to any GPUNet-like architecture.

        Unlike ``encode()``, which refuses what the space cannot express, this maps
        *any* architecture (a published tier with per-layer kernels, fractional
        expansions, another tail or stage layout) to a point, so it can serve as a prior.
        Layers are matched by downsampling level (feature-map stride), not by stage
        label: the architecture's stage groups at a level fill this space's stages at that
        level in order (extra groups merge into the last one). Per stage: layers add up
        (clipped to the range), filters are the group's last width, kernel/expansion the
        layer-weighted mean, activation the majority, SE if most layers use it; each
        snapped to the nearest choice. Resolution snaps to the nearest allowed one.
        """
        arch = obj if isinstance(obj, GPUNetArch) else GPUNetArch.from_dict(obj)
        # this space's stages per level (a stride-2 stage opens a level)
        space_levels: List[List[StageSpec]] = []
        for s in self.stages:
            if s.stride == 2 or not space_levels:
                space_levels.append([])
            space_levels[-1].append(s)
        # the architecture's layers per level, grouped by its own stage label
        arch_levels: List[List[List[Any]]] = []
        for layer in arch.layers():
            if layer.stride == 2 or not arch_levels:
                arch_levels.append([])
            groups = arch_levels[-1]
            if not groups or groups[-1][0].stage != layer.stage:
                groups.append([])
            groups[-1].append(layer)

        def snap(value: float, choices: Sequence[Any]) -> Any:
            return min(choices, key=lambda c: (abs(float(c) - float(value)), float(c)))

        vals: Dict[str, Any] = {}
        for lv, stages in enumerate(space_levels):
            groups = arch_levels[lv] if lv < len(arch_levels) else []
            if len(groups) > len(stages):  # merge the extra groups into the last stage
                groups = groups[: len(stages) - 1] + [
                    [lay for g in groups[len(stages) - 1 :] for lay in g]
                ]
            for i, s in enumerate(stages):
                p = f's{s.stage}.'
                g = groups[i] if i < len(groups) else []
                n = len(g)
                vals[p + 'layers'] = snap(n, s.layer_choices)
                if not g:  # nothing at this stage: the smallest setting
                    vals[p + 'filters'] = s.filter_choices[0]
                    vals[p + 'kernel'] = s.kernels[0]
                    vals[p + 'expansion'] = (s.expansions or (1,))[0]
                    vals[p + 'act'] = s.acts[0]
                    vals[p + 'se'] = bool(s.se[0])
                    continue
                vals[p + 'filters'] = snap(g[-1].out_channels, s.filter_choices)
                vals[p + 'kernel'] = snap(np.mean([lay.kernel for lay in g]), s.kernels)
                expansions = [lay.mid_channels / max(lay.in_channels, 1) for lay in g]
                vals[p + 'expansion'] = snap(np.mean(expansions), s.expansions or (1,))
                n_swish = sum(lay.act == 'swish' for lay in g)
                act = 'swish' if 2 * n_swish > n else 'relu'
                vals[p + 'act'] = act if act in s.acts else s.acts[0]
                se = 2 * sum(lay.se_channels > 0 for lay in g) > n
                vals[p + 'se'] = se if se in s.se else bool(s.se[0])
        vals['resolution'] = snap(arch.resolution, self.resolutions)
        x = self.from_values({k: v for k, v in vals.items() if k in self._index})
        return self.canonical(x)

    def to_json(self, x: ArrayLike) -> Any:
        return self.decode(x).to_dict()

    def from_json(self, data: Any) -> np.ndarray:
        return self.encode(GPUNetArch.from_dict(data))

    def smallest(self) -> GPUNetArch:
        """All ordinal choices at their minimum and categoricals at their first choice."""
        return self.decode(self.canonical(np.zeros(self.dims)))

    def config(self) -> Dict[str, Any]:
        return dict(
            type=self.type_name,
            variant=self.variant,
            resolutions=list(self.resolutions),
            stages=[
                {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()}
                for s in self._stage_overrides
            ],
            tail_channels=self.tail_channels,
            name_prefix=self.name_prefix,
        )


SPACES = {c.type_name: c for c in (BoxSpace, DiscreteSpace, GPUNetSpace)}


def build_space(cfg: Union[SearchSpace, Mapping[str, Any]]) -> SearchSpace:
    """Build a space from an mmengine-style dict: ``dict(type='GPUNetSpace', ...)``."""
    if isinstance(cfg, SearchSpace):
        return cfg
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise ValueError(f'space config: got {cfg!r}; allowed: a dict with a "type" key')
    cfg = dict(cfg)
    kind = cfg.pop('type')
    if kind not in SPACES:
        raise ValueError(f'space type: got {kind!r}; allowed: {", ".join(SPACES)}')
    return SPACES[kind](**cfg)


__all__ = [
    'SearchSpace',
    'BoxSpace',
    'Dim',
    'DiscreteSpace',
    'StageSpec',
    'GPUNetSpace',
    'CLASSIFICATION_STAGES',
    'CLASSIFICATION_RESOLUTIONS',
    'DETECTION_RESOLUTIONS',
    'TAIL_CHANNELS',
    'InfeasibleSpaceError',
    'build_space',
]
