"""Latency backends behind one interface; :func:`get_backend` picks one by name.

The names are those registered in :data:`~gpunet_mm.deploy.backends.registry.LATENCY_BACKENDS`.
"""

from __future__ import annotations

from typing import Any, Dict

# the backends register in this order, which is the order their names are listed in
# (error messages, ``available_backends``): import them before any module that uses one
from . import onnxruntime, tensorrt, torch  # noqa: F401,I001
from .base import BackendUnavailableError, LatencyBackend, LatencyResult
from .onnxruntime import OnnxRuntimeBackend
from .registry import LATENCY_BACKENDS
from .side_by_side import time_ort_vs_torch
from .tensorrt import TensorRTBackend, plan_engine_build, plan_for_onnx
from .torch import DetectorPredict, TorchBackend


def available_backends() -> Dict[str, bool]:
    """Every registered backend's name and whether its runtime is installed."""
    return {name: cls.available() for name, cls in LATENCY_BACKENDS.module_dict.items()}


def allowed_backends() -> str:
    """The registered backend names, sorted and comma-separated: what an error about a
    backend name lists as allowed (the latency target's and the schema's)."""
    return ', '.join(sorted(LATENCY_BACKENDS.module_dict))


def get_backend(name: str, **kwargs: Any) -> LatencyBackend:
    """Instantiate a backend; unknown or missing ones say what exists and how to install."""
    backends = LATENCY_BACKENDS.module_dict
    if name not in backends:
        status = ', '.join(
            f'{n} ({"installed" if ok else "missing: " + backends[n].install_hint})'
            for n, ok in available_backends().items()
        )
        raise ValueError(f'latency backend: got {name!r}; allowed: {status}')
    cls = backends[name]
    if not cls.available():
        raise BackendUnavailableError(f'backend {name!r} is not installed: {cls.install_hint}')
    return cls(**kwargs)


__all__ = [
    'BackendUnavailableError',
    'DetectorPredict',
    'LATENCY_BACKENDS',
    'LatencyBackend',
    'LatencyResult',
    'OnnxRuntimeBackend',
    'TensorRTBackend',
    'TorchBackend',
    'allowed_backends',
    'available_backends',
    'get_backend',
    'plan_engine_build',
    'plan_for_onnx',
    'time_ort_vs_torch',
]
