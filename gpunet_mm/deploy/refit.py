"""A pruning predictor that learns the search's target from the search's own measurements.

Before a search, ``gpunet_mm.search.api.calibrate`` anchors a predictor made for another
device (the analytic proxy, or a ``gpunet_mm.deploy.LatencyPredictor`` fitted
elsewhere) with ``measured = intercept + slope * predicted`` from a handful of points. On the
demo that anchor still over-predicted the proposals by 38 % (12.77 ms predicted, 9.24 ms
measured): proposals stayed far inside the budget, away from the boundary where the best
networks are.

``RefitPredictor`` keeps every exact measurement the search makes
(``RefitPredictor.observe``) and refits after each one, choosing by leave-one-out
relative error among

* ``anchor``: ``intercept + slope * base(arch)`` (what calibration fits, with more points);
* ``features``: a non-negative linear model over the whole-detector cost features of
  ``gpunet_mm.deploy.predictor.arch_features`` (when the search gives a feature
  function), the same model as ``gpunet_mm.deploy.LatencyPredictor``, fitted to this
  target's own measurements. Its features are grouped into a few sums (backbone compute,
  memory traffic, neck and head, post-processing, per-node overhead) so that ten points
  can fit it.

``predictor.refit`` in a search config chooses among them (``models``), weights recent
measurements (``halflife``) or re-anchors the fit on the median measured / fitted ratio of
the latest ones (``rescale``). Replayed on seven demo searches' journals without lookahead
(``benchmarks/benchmark_refit.py --journals``), what limited the error was the base the
models start from and the timing, not the refit: the in-run ``features`` model predicted the
detectors' re-timed latencies within 5.3 % after 10 measurements, the ``anchor`` (ratio)
model over the committed demo predictor within 3.2 %, and neither ``halflife`` nor
``rescale`` helped consistently (both are off by default). The RetinaNet demo therefore
uses the ratio model over its committed predictor (``docs/search_fidelity.md``).

``RefitPredictor.recent_error`` is the median absolute percentage error of the
predictions made *before* each of the last 20 measured proposals (calibration points and
references are fitted, not counted): the error the search pruned with, not a fit residual.
Numpy and scipy only (no torch), like the predictor.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: the sums of ``gpunet_mm.deploy.predictor.FEATURES`` the ``features`` model fits
#: (few enough to fit from about ten measurements)
FEATURE_GROUPS = (
    ('dense_gflops', 'pointwise_gflops', 'depthwise_gflops'),
    ('act_mem_melems', 'swish_melems', 'se_melems'),
    ('neck_lateral_gflops', 'neck_head_gflops', 'neck_head_melems'),
    ('post_scores_melems', 'post_topk_kelems', 'nms_kwork'),
    ('num_nodes',),
    ('bias',),
)

#: the models ``RefitPredictor`` chooses among (module docstring)
MODELS = ('anchor', 'features')


def grouped_features(predictor: Any) -> Callable[[Any], np.ndarray]:
    """``arch -> grouped features`` from a ``LatencyPredictor``'s feature function
    (the detector template and target it was made for; it need not be fitted). Each group
    is summed after scaling its members by the predictor's coefficients when it has them
    (their relative weights), else by 1."""
    from .predictor import FEATURES

    index = {f: i for i, f in enumerate(FEATURES)}
    coef = getattr(predictor, 'coef', None)
    groups = []
    for g in FEATURE_GROUPS:
        idx = [index[f] for f in g]
        w = np.ones(len(idx))
        if coef is not None and np.asarray(coef)[idx].sum() > 0:
            w = np.asarray(coef, dtype=np.float64)[idx]
        groups.append((idx, w))

    def fn(arch: Any) -> np.ndarray:
        f = predictor.features(arch)
        return np.array([float(f[idx] @ w) for idx, w in groups])

    return fn


class RefitPredictor:
    """Latency prediction refitted from every measurement (see the module docstring).

    Args:
        base: ``arch -> ms`` before calibration (the proxy or a loaded predictor).
        slope, intercept: the calibration's anchor, used until two points are observed.
        features: optional ``arch -> feature vector`` (``grouped_features``).
        window: how many of the latest measurements ``recent_error`` covers.
        models: the models it chooses among (``'anchor'``, ``'features'``).
        halflife: None, or the age (in measurements) at which a measurement weighs half as
            much as the latest in every fit: a target whose speed drifts (a shared machine)
            is learnt from its recent state.
        rescale: None, or how many of the latest measurements re-anchor the chosen fit:
            its predictions are multiplied by the median of their measured / fitted ratios
            (robust to one bad timing; follows a drift every detector shares).
    """

    def __init__(
        self,
        base: Callable[[Any], float],
        slope: float = 1.0,
        intercept: float = 0.0,
        features: Optional[Callable[[Any], np.ndarray]] = None,
        window: int = 20,
        models: Sequence[str] = MODELS,
        halflife: Optional[float] = None,
        rescale: Optional[int] = None,
    ) -> None:
        if not (math.isfinite(slope) and slope > 0):
            raise ValueError(f'slope: got {slope!r}; allowed: a finite number > 0')
        bad = [m for m in models if m not in MODELS]
        if bad or not models:
            raise ValueError(
                f'models: got {list(models)!r}; allowed: a non-empty subset of {MODELS}'
            )
        if halflife is not None and not (math.isfinite(halflife) and halflife > 0):
            raise ValueError(f'halflife: got {halflife!r}; allowed: None or a number > 0')
        if rescale is not None and not (isinstance(rescale, int) and rescale >= 1):
            raise ValueError(f'rescale: got {rescale!r}; allowed: None or an integer >= 1')
        self.models = tuple(models)
        self.halflife = halflife
        self.rescale = rescale
        self._scale = 1.0  # the recent re-anchoring factor (``rescale``)
        self.base = base
        self.features = features
        self.window = int(window)
        self._anchor = (float(intercept), float(slope))
        self._coef: Optional[np.ndarray] = None  # the features model, when chosen
        self.model = 'calibration'
        self._x: List[Tuple[float, Optional[np.ndarray]]] = []  # (base, features) per point
        self._y: List[float] = []
        self._errors: List[float] = []  # |pred - measured| / measured before each observe
        self._cache: Dict[Any, Tuple[float, Optional[np.ndarray]]] = {}
        #: called after every refit (the search clears its optimisers' cached predictions)
        self.on_refit: Optional[Callable[[], None]] = None

    # ------------------------------------------------------------------ api
    def _inputs(self, arch: Any) -> Tuple[float, Optional[np.ndarray]]:
        key = arch.structural_hash() if hasattr(arch, 'structural_hash') else id(arch)
        got = self._cache.get(key)
        if got is None:
            f = None if self.features is None else np.asarray(self.features(arch), dtype=float)
            got = (float(self.base(arch)), f)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = got
        return got

    def predict(self, arch: Any) -> float:
        """Predicted latency (ms) of ``arch`` on the search's target."""
        b, f = self._inputs(arch)
        return self._predict(b, f)

    __call__ = predict

    def _predict(self, b: float, f: Optional[np.ndarray]) -> float:
        return self._scale * self._fitted(b, f)

    def _fitted(self, b: float, f: Optional[np.ndarray]) -> float:
        if self._coef is not None and f is not None:
            return float(f @ self._coef)
        a, s = self._anchor
        return a + s * b

    def observe(self, arch: Any, measured_ms: float, seed_point: bool = False) -> float:
        """Record an exact measurement and refit; returns the relative error the prediction
        had before it. ``seed_point``: a calibration measurement, fitted but not counted in
        ``recent_error`` (it was not a proposal)."""
        y = float(measured_ms)
        if not (math.isfinite(y) and y > 0):
            raise ValueError(f'measured_ms: got {measured_ms!r}; allowed: a finite number > 0')
        if isinstance(arch, Mapping):
            from ..models.arch_spec import GPUNetArch

            arch = GPUNetArch.from_dict(arch)
        b, f = self._inputs(arch)
        err = abs(self._predict(b, f) - y) / y
        if not seed_point:
            self._errors.append(err)
        self._x.append((b, f))
        self._y.append(y)
        self._refit()
        if self.on_refit is not None:
            self.on_refit()
        return err

    def recent_error(self) -> Optional[float]:
        """Median absolute relative error (0.05 = 5 %) of the predictions made before the
        last ``window`` measurements; None before the first."""
        if not self._errors:
            return None
        return float(np.median(self._errors[-self.window :]))

    @property
    def num_observed(self) -> int:
        return len(self._errors)

    def state(self) -> Dict[str, Any]:
        """What the summary reports."""
        err = self.recent_error()
        return dict(
            model=self.model,
            measurements=len(self._y),
            recent_median_abs_error=None if err is None else round(err, 4),
            window=min(self.window, len(self._errors)),
        )

    # ------------------------------------------------------------------ fitting
    def _refit(self) -> None:
        y = np.asarray(self._y)
        base = np.array([b for b, _ in self._x])
        w = None
        if self.halflife is not None:
            w = 0.5 ** (np.arange(len(y))[::-1] / self.halflife)
        fits: Dict[str, Tuple[Callable[..., Any], np.ndarray]] = {}
        if len(y) >= 2 and 'anchor' in self.models:
            fits['anchor'] = (_fit_anchor, np.stack([np.ones_like(base), base], axis=1))
        if self.features is not None and len(y) >= 4 and 'features' in self.models:
            fits['features'] = (_fit_nnls, np.stack([f for _, f in self._x]))
        if not fits:  # too few points to fit: the anchor scaled through their median ratio
            a, s = self._anchor
            p = a + s * base
            if (p > 0).all():
                r = float(np.median(y / p))
                self._anchor = (a * r, s * r)
            return
        scores = {name: _loo_error(fit, x, y, w) for name, (fit, x) in fits.items()}
        self.model = min(scores, key=lambda k: (scores[k], k != 'anchor'))
        fit, x = fits[self.model]
        coef = fit(x, y, w)
        if self.model == 'anchor':
            self._anchor, self._coef = (float(coef[0]), float(coef[1])), None
        else:
            self._coef = coef
        if self.rescale is not None:
            k = self.rescale
            fitted = np.array([self._fitted(b, f) for b, f in self._x[-k:]])
            ok = fitted > 0
            self._scale = float(np.median(y[-k:][ok] / fitted[ok])) if ok.any() else 1.0


def _fit_nnls(x: np.ndarray, y: np.ndarray, w: Optional[np.ndarray] = None) -> np.ndarray:
    """Non-negative least squares on relative error (small and large networks alike),
    each point's squared error weighted by ``w`` when given."""
    from scipy.optimize import nnls

    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    r = np.ones_like(y) if w is None else np.sqrt(w)
    coef, _ = nnls((x / scale) / y[:, None] * r[:, None], r)
    return coef / scale


def _fit_anchor(x: np.ndarray, y: np.ndarray, w: Optional[np.ndarray] = None) -> np.ndarray:
    """``intercept + slope * base`` with both >= 0 (relative error); through the origin by
    the median ratio when the fit degenerates (all points with one prediction)."""
    coef = _fit_nnls(x, y, w)
    if coef[1] <= 0:
        coef = np.array([0.0, float(np.median(y / np.maximum(x[:, 1], 1e-12)))])
    return coef


def _loo_error(
    fit: Callable[..., np.ndarray], x: np.ndarray, y: np.ndarray, w: Optional[np.ndarray] = None
) -> float:
    """Median leave-one-out relative error of a model (how it predicts an unseen point)."""
    n = len(y)
    if n < 3:
        return float(np.median(np.abs(x @ fit(x, y, w) - y) / y))
    errs = []
    for i in range(n):
        keep = np.arange(n) != i
        coef = fit(x[keep], y[keep], None if w is None else w[keep])
        errs.append(abs(float(x[i] @ coef) - y[i]) / y[i])
    return float(np.median(errs))


def replay(model: RefitPredictor, archs: Sequence[Any], measured: Sequence[float]) -> List[float]:
    """Observe measurements in order; returns each one's error before it was observed."""
    return [model.observe(a, m) for a, m in zip(archs, measured)]
