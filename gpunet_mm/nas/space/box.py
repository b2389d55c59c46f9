"""A continuous box ``[lower, upper]^d``: the space of the benchmark test functions."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..registry import NAS_SPACES
from .base import ArrayLike, SearchSpace


@NAS_SPACES.register_module()
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
