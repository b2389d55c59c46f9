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


class _LatencyService:
    """What every latency service holds: the search config, the target and the cache.

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
        from ..deploy import LatencyCache

        self.cfg = dict(cfg)
        self.target_cfg = dict(target)
        self.target = make_target(target)
        self.exclusive = bool(target.get('exclusive', False))
        self.cache = LatencyCache(cache_path)
        self.onnx_dir = onnx_dir


class DetectorLatency(_LatencyService):
    """Measures whole exported detectors (decoding and NMS included) on one target."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.template = {'model': dict(self.cfg['model'])}

    def measure(self, archs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        from ..deploy import measure_detector
        from ..models.arch_spec import GPUNetArch

        out = []
        for d in archs:
            a = GPUNetArch.from_dict(d)
            hits = self.cache.hits
            r = measure_detector(
                a, self.template, self.target, cache=self.cache, work_dir=self.onnx_dir
            )
            out.append(_row(r, cached=self.cache.hits > hits))
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


class ClassifierLatency(_LatencyService):
    """Measures exported classifiers (backbone, pooling, head) on one target, for searches
    whose base config is an mmpretrain classifier."""

    def measure(self, archs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        import os
        import tempfile

        import torch

        from ..apis.runner import build_model
        from ..deploy.cache import LatencyKey, config_hash
        from ..models.arch_spec import GPUNetArch
        from .trainer import candidate_config

        backend = self.target.make_backend()
        out = []
        for d in archs:
            a = GPUNetArch.from_dict(d)
            shape = (a.resolution, a.resolution)
            mcfg = candidate_config(self.cfg, d, apply_resolution=False)['model']
            key = LatencyKey(
                arch_hash=a.structural_hash(),
                shape=shape,
                batch=self.target.batch,
                precision=self.target.precision,
                backend=backend.name,
                device=backend.device_key(),
                model_hash=config_hash(
                    dict({k: v for k, v in mcfg.items() if k != 'backbone'}, variant='cls')
                ),
            )

            def run(mcfg=mcfg, shape=shape, key=key):
                torch.manual_seed(0)
                model = build_model(mcfg, 'mmpretrain').eval()

                class Logits(torch.nn.Module):
                    def __init__(self, m):
                        super().__init__()
                        self.m = m

                    def forward(self, x):
                        return self.m(x, mode='tensor')

                folder = self.onnx_dir or tempfile.mkdtemp(prefix='gpunet_cls_')
                os.makedirs(folder, exist_ok=True)
                path = osp.join(folder, f'{key.digest()}.onnx')
                with torch.no_grad():
                    torch.onnx.export(
                        Logits(model),
                        (torch.rand(self.target.batch, 3, *shape),),
                        path,
                        dynamo=False,
                        opset_version=17,
                        input_names=['input'],
                        output_names=['logits'],
                    )
                return backend.measure(path, **self.target.measure_kwargs(shape))

            r, cached = self.cache.get_or_measure(key, run)
            out.append(_row(r, cached))
        return out
