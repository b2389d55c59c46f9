"""The latency side of the search: exact end-to-end latency of each proposal on the target.

One service owns the target device, so two timings never share it. Where the trainings
run on that same device (one CPU machine), the controller calls the service only while no
training runs (``exclusive=False``); a service with a device of its own (a GPU kept for
timing, a Ray actor with a custom resource) is ``exclusive`` and is called at any time.
Results go through the :class:`~gpunet_mm.deploy.LatencyCache`, so an architecture is
measured once per target, across searches that share the cache file.

``latency_target.rounds`` (default 1) times each new architecture in that many rounds of
``iters`` runs, round-robin over the architectures of one call, and keeps the round with the
median median. On a machine shared with other work (``make demo`` on 2 cores) the load
comes in bursts that one round of 30 runs (0.3 s) can catch whole: re-timing the demo
search's detectors in 5 rounds under load moved single rounds by 3-5 % (coefficient of
variation) and their first recorded values by up to 21 %, which is what the refitted
predictor's error was measured against (``docs/search_fidelity.md``). A device of its own
needs one round.

A burst is not the only load: on that machine the load level drifts over minutes, and a
detector's CPU time drifted with it by up to 25 % between measurement windows of one
search, every detector of a window alike (re-timed together under two loads, 20 demo
detectors slowed by 1.09x with a spread of 1.7 % between them). ``latency_target.anchor``
(a published tier, e.g. ``'GPUNet-0'``) re-times that tier in the rounds of every window
that times something new and scales the window's new latencies by the tier's cached
latency over its latency now (``env['load_scale']``), so every latency is in the units of
the tier's first timing, as a budget of ``'1.1*GPUNet-0'`` is.
"""

from __future__ import annotations

import os.path as osp
import shutil
import tempfile
from typing import Any, Dict, List, Mapping, Optional

#: ``latency_target`` keys the service reads itself (not :class:`LatencyTarget` fields)
SERVICE_KEYS = ('exclusive', 'resources', 'cache', 'rounds', 'anchor')


def make_target(cfg: Mapping[str, Any]):
    """A :class:`~gpunet_mm.deploy.LatencyTarget` from the search's ``latency_target``."""
    from ..deploy import LatencyTarget

    keep = {k: v for k, v in cfg.items() if k not in SERVICE_KEYS}
    if 'shape' in keep and keep['shape'] is not None:
        keep['shape'] = tuple(keep['shape'])
    return LatencyTarget(**keep)


def _row(r: Any, cached: bool) -> Dict[str, Any]:
    """What a service reports per arch (and the journal keeps): a ``LatencyResult``'s
    figures as plain JSON, and whether the cache answered."""
    out = dict(
        latency_ms=float(r.median_ms),
        p90_ms=float(r.p90_ms),
        mean_ms=float(r.mean_ms),
        backend=r.backend,
        precision=r.precision,
        batch=r.batch,
        shape=list(r.shape),
        cached=cached,
        env=r.env,
    )
    for k in ('rounds_ms', 'load_scale'):
        if k in r.env:
            out[k] = r.env[k]
    return out


def rescaled(r: Any, scale: float) -> Any:
    """``r`` (a ``LatencyResult``) with its times multiplied by ``scale`` (the anchor's
    drift), the unscaled median kept in ``env``."""
    import dataclasses

    env = dict(r.env, load_scale=round(scale, 5), unscaled_ms=round(float(r.median_ms), 4))
    times = {k: getattr(r, k) * scale for k in ('median_ms', 'p90_ms', 'mean_ms', 'min_ms')}
    return dataclasses.replace(r, std_ms=r.std_ms * scale, env=env, **times)


def median_round(rounds: List[Any]) -> Any:
    """The round (a ``LatencyResult``) whose median is the median of the rounds' medians
    (the lower middle one of an even count), its ``env`` listing every round's median as
    ``rounds_ms``: a burst of load inflates a round, rarely most of them."""
    order = sorted(range(len(rounds)), key=lambda i: rounds[i].median_ms)
    pick = rounds[order[(len(rounds) - 1) // 2]]
    pick.env = dict(pick.env, rounds_ms=[round(float(r.median_ms), 4) for r in rounds])
    return pick


class LatencyService:
    """Measures the search's candidates on one target through the package's latency service
    (:func:`~gpunet_mm.deploy.latency.measure_latency`, its key and cache): whole exported
    detectors (decoding and NMS included) or, for an mmpretrain base config, classifiers.

    Args:
        cfg: the search config (its ``model`` is the template the candidates go into).
        target: the ``latency_target`` dict of the search config.
        cache_path: the latency cache (SQLite).
        onnx_dir: where exported graphs are kept (None: temporary).
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        target: Mapping[str, Any],
        cache_path: str,
        onnx_dir: Optional[str] = None,
    ) -> None:
        from ..arch_config import is_classifier
        from ..deploy import LatencyCache

        self.cfg = dict(cfg)
        self.target_cfg = dict(target)
        self.target = make_target(target)
        self.exclusive = bool(target.get('exclusive', False))
        self.rounds = int(target.get('rounds') or 1)
        self.anchor = target.get('anchor')
        self._anchor_arch: Any = None
        if self.rounds < 1:
            raise ValueError(f'latency_target.rounds: got {self.rounds!r}; allowed: integers >= 1')
        self.cache = LatencyCache(cache_path)
        self.onnx_dir = onnx_dir
        self.template = {'model': dict(self.cfg['model'])}
        self.task = 'classification' if is_classifier(self.template['model']) else 'detection'

    def measure(self, archs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        from ..deploy.latency import measure_latency
        from ..models.arch_spec import GPUNetArch

        if self.rounds > 1 or self.anchor:
            return self._measure_rounds([GPUNetArch.from_dict(d) for d in archs])
        out = []
        for d in archs:
            r, cached = measure_latency(
                GPUNetArch.from_dict(d),
                self.template,
                self.target,
                cache=self.cache,
                work_dir=self.onnx_dir,
                task=self.task,
            )
            out.append(_row(r, cached))
        return out

    def _measure_rounds(self, archs: List[Any]) -> List[Dict[str, Any]]:
        """Cached architectures answered from the cache; the others timed in ``rounds``
        rounds, round-robin (each exported once), the median round stored in the cache."""
        from ..deploy.latency import latency_key, measure_latency

        backend = self.target.make_backend()
        keys = [latency_key(a, self.template, self.target, backend, self.task) for a in archs]
        out: List[Optional[Dict[str, Any]]] = [None] * len(archs)
        todo = []
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                out[i] = _row(hit, True)
            else:
                todo.append(i)
        ref = self._anchor_base(keys, todo, backend) if todo else None
        timed = list(todo)
        if ref is not None:  # the anchor is re-timed along, as one more architecture
            archs = [*archs, ref[0]]
            timed.append(len(archs) - 1)
        tmp = tempfile.mkdtemp(prefix='gpunet_lat_') if self.onnx_dir is None else None
        try:
            got: Dict[int, List[Any]] = {i: [] for i in timed}
            for _ in range(self.rounds):
                for i in timed:
                    r, _ = measure_latency(
                        archs[i],
                        self.template,
                        self.target,
                        cache=None,
                        work_dir=self.onnx_dir or tmp,
                        task=self.task,
                        backend=backend,
                    )
                    got[i].append(r)
            scale = None
            if ref is not None:
                now = median_round(got[timed[-1]])
                if ref[1] is None:  # its first timing: the unit from now on
                    self.cache.put(ref[2], now)
                else:
                    scale = ref[1] / now.median_ms
            for i in todo:
                r = median_round(got[i])
                if scale is not None:
                    r = rescaled(r, scale)
                if tmp is not None:
                    r.env['onnx'] = None
                self.cache.put(keys[i], r)
                out[i] = _row(r, False)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return [o for o in out if o is not None]

    def _anchor_base(self, keys: List[Any], todo: List[int], backend: Any) -> Optional[tuple]:
        """(anchor arch, its cached latency or None, its key) when this window must re-time
        the anchor: it is configured and not itself among the new architectures (then it is
        timed as one of them). Its first timing is cached and is the unit."""
        if not self.anchor:
            return None
        from ..deploy.latency import latency_key
        from ..models.arch_spec import GPUNetArch
        from ..nas import build_space
        from .api import reference_arch

        if self._anchor_arch is None:
            space = build_space(self.cfg['search_space'])
            self._anchor_arch = GPUNetArch.from_dict(reference_arch(self.anchor, space))
        key = latency_key(self._anchor_arch, self.template, self.target, backend, self.task)
        if any(keys[i].digest() == key.digest() for i in todo):
            return None
        base = self.cache.get(key)
        return (self._anchor_arch, None if base is None else float(base.median_ms), key)


class RayLatency:
    """A latency service (``kind``) inside a Ray actor that holds the target's resources
    (e.g. ``dict(num_gpus=1)`` or a custom ``resources={'latency_gpu': 1}``)."""

    exclusive = True

    def __init__(self, resources: Mapping[str, Any], kind: type, *args: Any, **kwargs: Any) -> None:
        import ray

        actor = ray.remote(**dict(resources))(kind)
        self._actor = actor.remote(*args, **kwargs)
        self._ray = ray

    def measure(self, archs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return self._ray.get(self._actor.measure.remote(archs))


def latency_paths(work_dir: str, target: Mapping[str, Any]) -> Dict[str, str]:
    cache = target.get('cache') or osp.join(work_dir, 'latency_cache.sqlite')
    return dict(cache=cache, onnx=osp.join(work_dir, 'onnx'))
