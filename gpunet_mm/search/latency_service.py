"""The latency side of the search: exact end-to-end latency of each proposal on the target.

One service owns the target device, so two timings never share it. Where the trainings
run on that same device (one CPU machine), the controller calls the service only while no
training runs (``exclusive=False``); a service with a device of its own (a GPU kept for
timing, a Ray actor with a custom resource) is ``exclusive`` and is called at any time.
Results go through the :class:`~gpunet_mm.deploy.LatencyCache`, so an architecture is
measured once per target, across searches that share the cache file.
"""

from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Mapping, Optional


def make_target(cfg: Mapping[str, Any]):
    """A :class:`~gpunet_mm.deploy.LatencyTarget` from the search's ``latency_target``."""
    from ..deploy import LatencyTarget

    keep = {k: v for k, v in cfg.items() if k not in ('exclusive', 'resources', 'cache')}
    if 'shape' in keep and keep['shape'] is not None:
        keep['shape'] = tuple(keep['shape'])
    return LatencyTarget(**keep)


def _row(r: Any, cached: bool) -> Dict[str, Any]:
    """What a service reports per arch (and the journal keeps): a ``LatencyResult``'s
    figures as plain JSON, and whether the cache answered."""
    return dict(
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
        self.cache = LatencyCache(cache_path)
        self.onnx_dir = onnx_dir
        self.template = {'model': dict(self.cfg['model'])}
        self.task = 'classification' if is_classifier(self.template['model']) else 'detection'

    def measure(self, archs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        from ..deploy.latency import measure_latency
        from ..models.arch_spec import GPUNetArch

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
