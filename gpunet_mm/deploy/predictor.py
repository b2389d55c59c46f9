"""Latency predictor: prune the search space before anything is exported.

Exporting and timing one candidate takes seconds; the search wants millions of "would this
fit the budget?" answers. The predictor maps an architecture, the detector template and the
input shape to analytic cost features of the **whole exported detector** (what
:func:`~gpunet_mm.deploy.latency.measure_detector` times):

* backbone: dense, pointwise and depthwise conv FLOPs, activation memory traffic, swish
  and SE work;
* neck + head: the FPN lateral convs (their input channels are the arch's level channels),
  the rest of the FPN and the head towers at that resolution (FLOPs and activation traffic,
  GroupNorm counted as extra passes);
* post-processing: per-level sigmoid / best-class max / top-k over every (prior, class)
  score, the gather + box decoding of the ``pre_top_k`` candidates per level, and the NMS
  work for the candidates above the score threshold (from the target's ``score_fraction``);
* the number of graph nodes (per-operator overhead) and a constant.

Channel counts are rounded up to the target's vector block (``channel_block``): ONNX Runtime
runs CPU convolutions in a blocked layout, so 24 channels cost what 32 do. That one fact took
the held-out share within +-10 % from 93 % to 100 % on the demo target (docs/deploy.md).

A non-negative linear model fitted to *measured* latencies turns them into milliseconds.
Every feature grows with channels, layers and resolution and every weight is >= 0, so the
prediction is monotone (more work never predicts less time), and the fit minimises the
relative error so that small and large networks count alike. Features are pure Python over
the spec (no torch), ~0.2 ms per arch cold and microseconds once cached.

Fitting from the latency cache: every :func:`measure_detector` result stores its arch, so
:func:`fit_from_cache` (re)fits a predictor for any target the cache holds measurements
of, choosing the channel block among :data:`CHANNEL_BLOCKS`.
"""

from __future__ import annotations

import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..models.arch_spec import GPUNetArch
from .config import as_hw

FEATURES = (
    'dense_gflops',
    'pointwise_gflops',
    'depthwise_gflops',
    'act_mem_melems',
    'swish_melems',
    'se_melems',
    'num_nodes',
    'neck_lateral_gflops',
    'neck_head_gflops',
    'neck_head_melems',
    'post_scores_melems',
    'post_topk_kelems',
    'nms_kwork',
    'bias',
)

#: channel blocks :func:`fit_from_cache` and the benchmark choose from (scalar, AVX2, AVX-512)
CHANNEL_BLOCKS = (1, 8, 16)

#: the committed predictor for the demo search target (see docs/deploy.md)
DEMO_PREDICTOR = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'predictor_demo_ort_cpu.json')


def _head_geometry(template: Mapping[str, Any]) -> Tuple[List[int], int, int, int]:
    """(strides, anchors per location, classes, outputs per location) of the bbox head."""
    neck = template.get('neck') or {}
    head = template.get('bbox_head') or {}
    num_outs = int(neck.get('num_outs', 5))
    ag = head.get('anchor_generator')
    strides = list((ag or {}).get('strides') or head.get('strides') or [])
    strides = [int(s[0] if isinstance(s, (list, tuple)) else s) for s in strides]
    if len(strides) < num_outs:
        strides = [8 * 2**i for i in range(num_outs)]
    a = len(ag.get('ratios', [1])) * int(ag.get('scales_per_octave', 1)) if ag else 1
    k = int(head.get('num_classes', 80))
    outs = a * k + a * 4 + (0 if ag else 1)  # FCOS: + centerness
    return strides[:num_outs], a, k, outs


def _post_cfg(template: Mapping[str, Any], target: Mapping[str, Any]) -> Tuple[int, float, float]:
    """(pre_top_k, score_fraction, score_threshold) after the target's overrides."""
    test_cfg = template.get('test_cfg') or (template.get('bbox_head') or {}).get('test_cfg') or {}
    pp = dict(target.get('post_processing') or {})
    pre = pp.get('pre_top_k') or test_cfg.get('nms_pre') or 1000
    frac = target.get('score_fraction', 0.002)
    thr = pp.get('score_threshold', test_cfg.get('score_thr', 0.05))
    return int(pre), float(frac if frac is not None else 0.002), float(thr)


def detector_tail_features(
    template: Mapping[str, Any],
    level_channels: Sequence[int],
    h: int,
    w: int,
    target: Optional[Mapping[str, Any]] = None,
) -> Dict[str, float]:
    """Neck, head and post-processing cost of an FPN + RetinaHead/FCOSHead template.

    ``level_channels`` are the backbone's channels at the neck's inputs. Raw counts (FLOPs,
    elements, nodes); :func:`arch_features` scales them.
    """
    neck = template.get('neck') or {}
    head = template.get('bbox_head') or {}
    c = int(neck.get('out_channels', 256))
    strides, a, k, outs = _head_geometry(template)
    sizes = [(-(-h // s)) * (-(-w // s)) for s in strides]
    lateral = other = elems = 0.0
    nodes = 0
    start = int(neck.get('start_level', 0))
    used = list(level_channels)[start:]
    for cin, hw in zip(used, sizes):
        lateral += cin * c * hw
        other += 9 * c * c * hw  # fpn 3x3
        elems += cin * hw + 3 * c * hw  # lateral in/out, top-down add, fpn out
        nodes += 4  # lateral, resize, add, fpn conv
    extra_on_input = neck.get('add_extra_convs') in ('on_input', True)
    for i, hw in enumerate(sizes[len(used) :]):
        if i == 0 and extra_on_input and used:
            lateral += 9 * used[-1] * c * hw
        else:
            other += 9 * c * c * hw
        elems += c * hw
        nodes += 2
    f = int(head.get('feat_channels', 256))
    n = int(head.get('stacked_convs', 4))
    norm = 3 if head.get('norm_cfg') else 1  # GroupNorm: mean/var/affine passes
    for hw in sizes:
        tower = 9 * c * f + 9 * f * f * (n - 1) if n else 0
        other += 2 * tower * hw + 9 * (f if n else c) * outs * hw
        elems += (2 * n * f * (1 + norm) + outs) * hw
        nodes += 2 * n * (2 + (6 if norm > 1 else 0)) + 2
    pre_top_k, frac, _ = _post_cfg(template, target or {})
    pairs = sum(hw * a for hw in sizes)
    scores = sum(hw * a * (k + 4) for hw in sizes)  # sigmoid, max, permutes over every prior
    kept = sum(min(hw * a, pre_top_k) * (k + 4) for hw in sizes)  # gather + decode + NMS scan
    cand = frac * pairs * k  # (prior, class) pairs above the score threshold
    nms = cand * math.log2(cand + 2) + cand * cand / max(k, 1)  # sort + pairwise IoU per class
    nodes += 30 * len(sizes) + 25
    return dict(
        neck_lateral=lateral,
        neck_head=other,
        neck_head_elems=elems,
        post_scores=float(scores),
        post_topk=float(kept),
        nms=nms,
        nodes=nodes,
    )


def _template(template: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    from .latency import SMALL_RETINANET

    return template or SMALL_RETINANET


def _check_shape(shape: Any) -> Tuple[int, int]:
    return as_hw(shape, 'predictor shape', square=False, none='the arch resolution')


def arch_features(
    arch: GPUNetArch,
    shape: Optional[Tuple[int, int]] = None,
    template: Optional[Mapping[str, Any]] = None,
    out_indices: Optional[Sequence[int]] = None,
    target: Optional[Mapping[str, Any]] = None,
    channel_block: int = 1,
) -> np.ndarray:
    """The cost features of the detector with ``arch`` at ``shape`` (see :data:`FEATURES`).

    ``shape`` defaults to the arch's resolution; ``template`` is a detector model dict
    (default: the light RetinaNet), ``target`` a :meth:`LatencyTarget.to_dict` (its
    post-processing overrides and ``score_fraction``). ``channel_block`` rounds channel
    counts up to the backend's vector block: ONNX Runtime's CPU convolutions run in a
    blocked layout (NCHWc, 16 channels with AVX-512, 8 with AVX2), so a 24-channel conv
    costs what a 32-channel one does (profiled: 7.4 ms for both at 128x128, k5).
    """
    if not isinstance(channel_block, int) or channel_block < 1:
        raise ValueError(f'channel_block: got {channel_block!r}; allowed: integers >= 1')
    template = _template(template)
    h, w = _check_shape(shape) if shape is not None else (arch.resolution, arch.resolution)
    dense = pw = dw = mem = swish = se = 0.0
    nodes = 3  # input cast/normalisation

    def pad(c: int) -> int:
        return -(-c // channel_block) * channel_block

    levels = arch.levels((h, w))  # feature-map sizes and level grouping: one shared pass
    for layer in (ly for lv in levels for ly in lv.layers):
        k, s = layer.kernel, layer.stride
        cin = layer.in_channels if layer.index == 0 else pad(layer.in_channels)  # image: NCHW
        mid, cout = pad(layer.mid_channels), pad(layer.out_channels)
        hwi, hwo = math.prod(layer.in_hw), math.prod(layer.out_hw)
        residual = s == 1 and layer.in_channels == layer.out_channels and layer.type != 'conv'
        if layer.type == 'conv':
            dense += k * k * cin * cout * hwo
            mem += cin * hwi + cout * hwo
            acts = cout * hwo
            nodes += 2
        elif layer.type == 'fused':
            dense += k * k * cin * mid * hwo
            pw += mid * cout * hwo
            mem += cin * hwi + 2 * mid * hwo + cout * hwo
            acts = mid * hwo
            nodes += 3
        else:
            pw += cin * mid * hwi + mid * cout * hwo
            dw += k * k * mid * hwo
            mem += cin * hwi + 2 * mid * hwi + 2 * mid * hwo + cout * hwo
            acts = mid * hwi + mid * hwo
            nodes += 5
        if residual:
            mem += 2 * cout * hwo
            nodes += 1
        if layer.se_channels:
            se += 2 * mid * hwo
            nodes += 6
        if layer.act == 'swish':
            swish += acts
            nodes += 2 if layer.type == 'conv' else (2 if layer.type == 'fused' else 3)
    idx = out_indices or (template.get('backbone') or {}).get('out_indices') or (2, 3, 4)
    chans = [pad(levels[i].out_channels) for i in idx]
    tail = detector_tail_features(template, chans, h, w, target)
    return np.array(
        [
            dense / 1e9,
            pw / 1e9,
            dw / 1e9,
            mem / 1e6,
            swish / 1e6,
            se / 1e6,
            float(nodes + tail['nodes']),
            tail['neck_lateral'] / 1e9,
            tail['neck_head'] / 1e9,
            tail['neck_head_elems'] / 1e6,
            tail['post_scores'] / 1e6,
            tail['post_topk'] / 1e3,
            tail['nms'] / 1e3,
            1.0,
        ]
    )


@dataclass
class LatencyPredictor:
    """Non-negative linear model on :func:`arch_features`, fitted to measured latencies.

    Attributes:
        coef: one weight per entry of :data:`FEATURES` (ms per unit).
        target: where the training latencies were measured (a ``LatencyTarget.to_dict()``;
            its ``shape`` is the default input shape, its post-processing and
            ``score_fraction`` feed the post-processing features).
        template: the detector model dict the features assume (None: the light RetinaNet).
        fit_stats: Kendall tau and relative errors on the fit set.
        channel_block: channel rounding of the features (see :func:`arch_features`);
            :meth:`fit` picks it among ``channel_blocks`` when given.
    """

    coef: Optional[np.ndarray] = None
    target: Dict[str, Any] = field(default_factory=dict)
    template: Optional[Dict[str, Any]] = None
    fit_stats: Dict[str, float] = field(default_factory=dict)
    channel_block: int = 1
    _feat_cache: Dict[Any, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def for_target(cls, template: Any = None, target: Any = None) -> LatencyPredictor:
        """An unfitted predictor for a detector template (path/Config/dict) and target."""
        from .latency import LatencyTarget, resolve_template

        if isinstance(target, LatencyTarget):
            target = target.to_dict()
        return cls(target=dict(target or {}), template=resolve_template(template))

    def _shape(self, arch: GPUNetArch, shape: Optional[Tuple[int, int]]) -> Tuple[int, int]:
        if shape is None:
            shape = self.target.get('shape') or (arch.resolution, arch.resolution)
        return _check_shape(shape)

    def features(self, arch: GPUNetArch, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
        shape = self._shape(arch, shape)
        key = (arch.structural_hash(), shape, self.channel_block)
        f = self._feat_cache.get(key)
        if f is None:
            f = arch_features(
                arch, shape, self.template, target=self.target, channel_block=self.channel_block
            )
            if len(self._feat_cache) > 100_000:
                self._feat_cache.clear()
            self._feat_cache[key] = f
        return f

    def fit(
        self,
        archs: Sequence[GPUNetArch],
        latencies_ms: Sequence[float],
        shapes: Optional[Sequence[Optional[Tuple[int, int]]]] = None,
        channel_blocks: Optional[Sequence[int]] = None,
    ) -> LatencyPredictor:
        """Fit to measurements (relative-error weighted non-negative least squares).

        With ``channel_blocks`` (e.g. ``(1, 8, 16)``) one fit per block size is made and the
        one with the lowest mean relative error on the fit set is kept: the block is a
        property of the target CPU that the measurements reveal.
        """
        from scipy.optimize import nnls

        if len(archs) != len(latencies_ms) or len(archs) < len(FEATURES):
            raise ValueError(
                f'fit needs as many latencies as archs and at least {len(FEATURES)} of each; '
                f'got {len(archs)} archs, {len(latencies_ms)} latencies'
            )
        y = np.asarray(latencies_ms, dtype=np.float64)
        bad = [(i, v) for i, v in enumerate(y.tolist()) if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(
                f'fit latencies must be finite and > 0 ms; got {bad[:5]} (index, value)'
                + (f' and {len(bad) - 5} more' if len(bad) > 5 else '')
            )
        shapes = shapes or [None] * len(archs)
        best = None
        for block in channel_blocks or (self.channel_block,):
            self.channel_block = int(block)
            x = np.stack([self.features(a, s) for a, s in zip(archs, shapes)])
            scale = x.max(axis=0)
            scale[scale == 0] = 1.0
            coef, _ = nnls((x / scale) / y[:, None], np.ones_like(y))
            coef = coef / scale
            stats = evaluate(x @ coef, y)
            if best is None or stats['mean_rel_error'] < best[2]['mean_rel_error']:
                best = (self.channel_block, coef, stats)
        self.channel_block, self.coef, self.fit_stats = best
        return self

    def predict(self, arch: GPUNetArch, shape: Optional[Tuple[int, int]] = None) -> float:
        """Predicted latency (ms) of ``arch`` at ``shape`` (default: the target's shape, else
        the arch's resolution) on the fitted target."""
        if self.coef is None:
            raise RuntimeError('LatencyPredictor.predict before fit() or load()')
        return float(self.features(arch, shape) @ self.coef)

    __call__ = predict

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
            coef={f: float(c) for f, c in zip(FEATURES, self.coef)},
            target=self.target,
            template=self.template,
            fit_stats=self.fit_stats,
            channel_block=self.channel_block,
        )

    def save(self, path: str) -> None:
        if osp.dirname(osp.abspath(path)):
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencyPredictor:
        """From ``to_dict()`` output or a benchmark results JSON that embeds it.

        ``coef`` may be a list (in the order of ``features``) or a ``{feature: weight}``
        mapping; the features must be exactly this version's :data:`FEATURES`.
        """
        if 'predictor' in d and isinstance(d['predictor'], Mapping):
            d = d['predictor']
        coef = d.get('coef')
        if isinstance(coef, Mapping):
            names, values = list(coef), list(coef.values())
            listed = d.get('features')
            if listed is not None and list(listed) != names:
                raise ValueError(
                    f'predictor coef keys {names} differ from its features list {list(listed)}'
                )
        elif isinstance(coef, (list, tuple)):
            names, values = list(d.get('features') or []), list(coef)
            if len(names) != len(values):
                raise ValueError(
                    f'predictor has {len(values)} coef values for {len(names)} features'
                )
        else:
            raise ValueError(
                f'predictor coef: got {type(coef).__name__}; allowed: a list with `features`, '
                'or a {feature: weight} mapping'
            )
        if names != list(FEATURES):
            missing = [f for f in FEATURES if f not in names]
            extra = [f for f in names if f not in FEATURES]
            raise ValueError(
                f'predictor features do not match this version: missing {missing}, unknown '
                f'{extra}; refit it (fit_from_cache) for features {list(FEATURES)}'
            )
        values = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f'predictor coef must be finite and >= 0; got {values.tolist()}')
        return cls(
            coef=values,
            target=dict(d.get('target') or {}),
            template=d.get('template'),
            fit_stats=dict(d.get('fit_stats') or {}),
            channel_block=int(d.get('channel_block', 1)),
        )

    @classmethod
    def load(cls, path: str) -> LatencyPredictor:
        from ..schema import PredictorFile, validate

        if not osp.isfile(path):
            raise FileNotFoundError(f'predictor file not found: {path}')
        try:
            with open(path, encoding='utf-8') as f:
                d = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f'predictor file {path}: not valid JSON ({e})') from None
        if isinstance(d, dict) and isinstance(d.get('predictor'), dict):
            d = d['predictor']
        validate(PredictorFile, d, f'predictor file {path}')
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f'predictor file {path}: {e}') from None


def load_demo_predictor() -> LatencyPredictor:
    """The committed predictor of the demo search target (demo RetinaNet, 256x256, batch 1,
    ONNX Runtime CPU fp32, one thread, process CPU clock)."""
    return LatencyPredictor.load(DEMO_PREDICTOR)


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
        p90_rel_error=float(np.percentile(rel, 90)),
        max_rel_error=float(rel.max()),
        within_10pct=float(np.mean(rel <= 0.10)),
        within_5pct=float(np.mean(rel <= 0.05)),
        n=int(len(y)),
    )


def records_to_training(
    records: Iterable[Dict[str, Any]], archs_by_hash: Optional[Dict[str, GPUNetArch]] = None
) -> Tuple[List[GPUNetArch], List[float], List[Tuple[int, int]]]:
    """Cache rows -> (archs, latencies, shapes) for :meth:`LatencyPredictor.fit`.

    The arch comes from ``archs_by_hash`` (keyed by the cache's ``arch_hash``:
    :func:`~gpunet_mm.deploy.latency.arch_key`) or, for rows of the latency service, from
    the spec stored in the result's environment; rows with neither are skipped.
    """
    archs, lats, shapes = [], [], []
    for r in records:
        a = (archs_by_hash or {}).get(r['arch_hash'])
        if a is None:
            spec = (r.get('result') or {}).get('env', {}).get('arch')
            a = GPUNetArch.from_dict(spec) if spec else None
        if a is None:
            continue
        archs.append(a)
        lats.append(float(r['median_ms']))
        shapes.append((int(r['height']), int(r['width'])))
    return archs, lats, shapes


def fit_from_cache(
    cache: Any,
    template: Any = None,
    target: Any = None,
    archs_by_hash: Optional[Dict[str, GPUNetArch]] = None,
    out_file: Optional[str] = None,
) -> LatencyPredictor:
    """(Re)fit a predictor from the cache's end-to-end measurements of one target.

    Selects the rows whose key matches ``template`` + ``target`` (same template hash,
    post-processing, backend, device/threads, precision, batch, clock), fits, and saves to
    ``out_file`` when given. Raises if the cache holds too few such rows.
    """
    from .cache import LatencyCache
    from .latency import LatencyTarget, latency_key, resolve_template

    if isinstance(cache, str):
        cache = LatencyCache(cache)
    if target is None:
        target = LatencyTarget()
    elif isinstance(target, Mapping):
        target = LatencyTarget.from_dict(target)
    model = resolve_template(template)
    probe = GPUNetArch.from_dict(
        dict(name='probe', rows=[dict(type='conv', kernel=3, out_channels=8, stride=2)] * 5)
    )
    key = latency_key(probe, model, target)
    rows = [
        r
        for r in cache.records(backend=key.backend, device=key.device)
        if r['model_hash'] == key.model_hash
        and r['precision'] == key.precision
        and r['batch'] == key.batch
        and (target.shape is None or (r['height'], r['width']) == tuple(target.shape))
    ]
    archs, lats, shapes = records_to_training(rows, archs_by_hash)
    pred = LatencyPredictor(target=target.to_dict(), template=model)
    if len(archs) < len(FEATURES):
        raise ValueError(
            f'the cache {getattr(cache, "path", cache)} holds {len(archs)} usable measurements '
            f'for this template/target (backend {key.backend}, device {key.device}); at least '
            f'{len(FEATURES)} are needed: measure more archs with measure_detector first'
        )
    pred.fit(archs, lats, shapes, channel_blocks=CHANNEL_BLOCKS)
    if out_file:
        pred.save(out_file)
    return pred
