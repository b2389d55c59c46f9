"""Latency predictor: prune the search space before anything is exported.

Exporting and timing one candidate takes seconds; the search wants millions of "would
this fit the budget?" answers. The predictor maps an architecture (plus the detector
template and input shape) to a handful of analytic cost features (dense, pointwise and
depthwise conv FLOPs, activation memory traffic, SE and swish work, layer count, neck+head
FLOPs at that resolution), and a non-negative linear model fitted to *measured* latencies on
the target turns them into milliseconds. Non-negative weights keep the model monotone (more
work never predicts less time), and the fit minimises relative error so small and large
networks count alike. Features are pure Python over the spec (no torch), ~0.1 ms per arch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..models.arch_spec import GPUNetArch, conv_out_size

FEATURES = (
    'dense_gflops',
    'pointwise_gflops',
    'depthwise_gflops',
    'act_mem_melems',
    'swish_melems',
    'se_melems',
    'num_layers',
    'neck_head_gflops',
    'neck_head_melems',
    'bias',
)


def _neck_head_cost(
    template: Dict[str, Any], level_channels: Sequence[int], h: int, w: int
) -> Tuple[float, float]:
    """FLOPs and output elements of an FPN + RetinaHead/FCOSHead template (analytic)."""
    neck = template.get('neck', {})
    head = template.get('bbox_head', {})
    c = int(neck.get('out_channels', 256))
    num_outs = int(neck.get('num_outs', 5))
    strides = [8 * 2**i for i in range(num_outs)]
    sizes = [(-(-h // s)) * (-(-w // s)) for s in strides]
    flops, elems = 0.0, 0.0
    for cin, hw in zip(level_channels, sizes):
        flops += cin * c * hw + 9 * c * c * hw  # lateral 1x1 + fpn 3x3
        elems += 2 * c * hw
    extra_in = level_channels[-1] if neck.get('add_extra_convs') == 'on_input' else c
    for i, hw in enumerate(sizes[len(level_channels) :]):
        flops += 9 * (extra_in if i == 0 else c) * c * hw
        elems += c * hw
    f = int(head.get('feat_channels', 256))
    n = int(head.get('stacked_convs', 4))
    k = int(head.get('num_classes', 80))
    ag = head.get('anchor_generator')
    a = len(ag.get('ratios', [1])) * int(ag.get('scales_per_octave', 1)) if ag else 1
    outs = a * k + a * 4 + (0 if ag else 1)
    for hw in sizes:
        tower = 9 * c * f + 9 * f * f * (n - 1) if n else 0
        flops += 2 * tower * hw + 9 * (f if n else c) * outs * hw
        elems += (2 * n * f + outs) * hw
    return flops, elems


def arch_features(
    arch: GPUNetArch,
    shape: Optional[Tuple[int, int]] = None,
    template: Optional[Dict[str, Any]] = None,
    out_indices: Sequence[int] = (2, 3, 4),
) -> np.ndarray:
    """The cost features of ``arch`` at ``shape`` (default: its resolution), see FEATURES."""
    from .latency import SMALL_RETINANET

    h, w = shape or (arch.resolution, arch.resolution)
    dense = pw = dw = mem = swish = se = 0.0
    layers = arch.layers()
    for layer in layers:
        k, s, cin, mid, cout = (
            layer.kernel,
            layer.stride,
            layer.in_channels,
            layer.mid_channels,
            layer.out_channels,
        )
        ho = conv_out_size(h, k, s, k // 2)
        wo = conv_out_size(w, k, s, k // 2)
        hwi, hwo = h * w, ho * wo
        if layer.type == 'conv':
            dense += k * k * cin * cout * hwo
            mem += cin * hwi + cout * hwo
            acts = cout * hwo
        elif layer.type == 'fused':
            dense += k * k * cin * mid * hwo
            pw += mid * cout * hwo
            mem += cin * hwi + 2 * mid * hwo + cout * hwo
            acts = mid * hwo
        else:
            pw += cin * mid * hwi + mid * cout * hwo
            dw += k * k * mid * hwo
            mem += cin * hwi + 2 * mid * hwi + 2 * mid * hwo + cout * hwo
            acts = mid * hwi + mid * hwo
        if layer.se_channels:
            se += 2 * mid * hwo
        if layer.act == 'swish':
            swish += acts
        h, w = ho, wo
    chans = arch.level_channels()
    nh_flops, nh_elems = _neck_head_cost(
        template or SMALL_RETINANET,
        [chans[i] for i in out_indices],
        *(shape or (arch.resolution, arch.resolution)),
    )
    return np.array(
        [
            dense / 1e9,
            pw / 1e9,
            dw / 1e9,
            mem / 1e6,
            swish / 1e6,
            se / 1e6,
            float(len(layers)),
            nh_flops / 1e9,
            nh_elems / 1e6,
            1.0,
        ]
    )


@dataclass
class LatencyPredictor:
    """Non-negative linear model on :func:`arch_features`, fitted to measured latencies.

    Attributes:
        coef: one weight per entry of :data:`FEATURES` (ms per unit).
        target: description of where the training latencies were measured.
        template: the detector template the features assume (None: SMALL_RETINANET).
    """

    coef: Optional[np.ndarray] = None
    target: Dict[str, Any] = field(default_factory=dict)
    template: Optional[Dict[str, Any]] = None
    fit_stats: Dict[str, float] = field(default_factory=dict)
    _feat_cache: Dict[Any, np.ndarray] = field(default_factory=dict, repr=False)

    def features(self, arch: GPUNetArch, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
        key = (arch.structural_hash(), tuple(shape) if shape else arch.resolution)
        f = self._feat_cache.get(key)
        if f is None:
            f = arch_features(arch, shape, self.template)
            if len(self._feat_cache) > 100_000:
                self._feat_cache.clear()
            self._feat_cache[key] = f
        return f

    def fit(
        self,
        archs: Sequence[GPUNetArch],
        latencies_ms: Sequence[float],
        shapes: Optional[Sequence[Optional[Tuple[int, int]]]] = None,
    ) -> LatencyPredictor:
        """Fit to measurements (relative-error weighted non-negative least squares)."""
        from scipy.optimize import nnls

        if len(archs) != len(latencies_ms) or len(archs) < len(FEATURES):
            raise ValueError(
                f'fit needs as many latencies as archs and at least {len(FEATURES)} of each; '
                f'got {len(archs)} archs, {len(latencies_ms)} latencies'
            )
        shapes = shapes or [None] * len(archs)
        x = np.stack([self.features(a, s) for a, s in zip(archs, shapes)])
        y = np.asarray(latencies_ms, dtype=np.float64)
        scale = x.max(axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls((x / scale) / y[:, None], np.ones_like(y))
        self.coef = coef / scale
        pred = x @ self.coef
        self.fit_stats = evaluate(pred, y)
        return self

    def predict(self, arch: GPUNetArch, shape: Optional[Tuple[int, int]] = None) -> float:
        """Predicted latency (ms) of ``arch`` at ``shape`` on the fitted target."""
        if self.coef is None:
            raise RuntimeError('LatencyPredictor.predict before fit() or load()')
        return float(self.features(arch, shape) @ self.coef)

    def predict_many(
        self, archs: Iterable[GPUNetArch], shape: Optional[Tuple[int, int]] = None
    ) -> np.ndarray:
        return np.array([self.predict(a, shape) for a in archs])

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> Dict[str, Any]:
        if self.coef is None:
            raise RuntimeError('nothing to save: the predictor is not fitted')
        return dict(
            features=list(FEATURES),
            coef=[float(c) for c in self.coef],
            target=self.target,
            template=self.template,
            fit_stats=self.fit_stats,
        )

    def save(self, path: str) -> None:
        with open(path, 'w') as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> LatencyPredictor:
        if list(d.get('features', [])) != list(FEATURES):
            raise ValueError(
                f'predictor features {d.get("features")} do not match this version {FEATURES}'
            )
        return cls(
            coef=np.asarray(d['coef'], dtype=np.float64),
            target=d.get('target', {}),
            template=d.get('template'),
            fit_stats=d.get('fit_stats', {}),
        )

    @classmethod
    def load(cls, path: str) -> LatencyPredictor:
        with open(path) as f:
            return cls.from_dict(json.load(f))


def evaluate(pred: Sequence[float], measured: Sequence[float]) -> Dict[str, float]:
    """Kendall tau (ranking quality, what pruning needs) and relative errors."""
    from scipy.stats import kendalltau

    p = np.asarray(pred, dtype=np.float64)
    y = np.asarray(measured, dtype=np.float64)
    rel = np.abs(p - y) / y
    return dict(
        kendall_tau=float(kendalltau(p, y).statistic),
        mean_rel_error=float(rel.mean()),
        median_rel_error=float(np.median(rel)),
        max_rel_error=float(rel.max()),
        n=int(len(y)),
    )


def records_to_training(
    records: Iterable[Dict[str, Any]], archs_by_hash: Dict[str, GPUNetArch]
) -> Tuple[List[GPUNetArch], List[float], List[Tuple[int, int]]]:
    """Cache rows -> (archs, latencies, shapes) for :meth:`LatencyPredictor.fit`."""
    archs, lats, shapes = [], [], []
    for r in records:
        a = archs_by_hash.get(r['arch_hash'])
        if a is None:
            continue
        archs.append(a)
        lats.append(float(r['median_ms']))
        shapes.append((int(r['height']), int(r['width'])))
    return archs, lats, shapes
