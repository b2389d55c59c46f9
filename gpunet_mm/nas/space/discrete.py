"""A product of finite dimensions (:class:`Dim`); points hold choice indices as floats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..registry import NAS_SPACES
from .base import ArrayLike, CostFn, SearchSpace


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


@NAS_SPACES.register_module()
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
        # one pass; NaN fails the equality and +-inf a bound, so no isfinite is needed
        return x.shape == (self.dims,) and bool(
            np.all((x == np.round(x)) & (x >= 0) & (x <= self._levels - 1))
        )

    def key(self, x: ArrayLike) -> str:
        # the hot path of every admissibility check: plain Python on one row, the same
        # string as joining canonical(x) (keys are persisted in journals and states)
        vals = np.asarray(x, dtype=float).reshape(-1).tolist()
        self._canonical_row(vals)
        return '.'.join([str(int(v)) for v in vals])

    def _canonical_row(self, vals: List[float]) -> None:
        """:meth:`canonical` of one point held as a list, in place (no inactive dims here)."""

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
