"""Latency backends behind one interface; :func:`get_backend` picks one by name."""

from __future__ import annotations

from typing import Any, Dict, Type

from .base import BackendUnavailableError, LatencyBackend, LatencyResult
from .onnxruntime import OnnxRuntimeBackend
from .tensorrt import TensorRTBackend, plan_engine_build, plan_for_onnx
from .torch import DetectorPredict, TorchBackend

BACKENDS: Dict[str, Type[LatencyBackend]] = {
    'onnxruntime': OnnxRuntimeBackend,
    'tensorrt': TensorRTBackend,
    'torch': TorchBackend,
}


def available_backends() -> Dict[str, bool]:
    return {name: cls.available() for name, cls in BACKENDS.items()}


def get_backend(name: str, **kwargs: Any) -> LatencyBackend:
    """Instantiate a backend; unknown or missing ones say what exists and how to install."""
    if name not in BACKENDS:
        status = ', '.join(
            f'{n} ({"installed" if ok else "missing: " + BACKENDS[n].install_hint})'
            for n, ok in available_backends().items()
        )
        raise ValueError(f'latency backend: got {name!r}; allowed: {status}')
    cls = BACKENDS[name]
    if not cls.available():
        raise BackendUnavailableError(f'backend {name!r} is not installed: {cls.install_hint}')
    return cls(**kwargs)


__all__ = [
    'BACKENDS',
    'BackendUnavailableError',
    'DetectorPredict',
    'LatencyBackend',
    'LatencyResult',
    'OnnxRuntimeBackend',
    'TensorRTBackend',
    'TorchBackend',
    'available_backends',
    'get_backend',
    'plan_engine_build',
    'plan_for_onnx',
]
