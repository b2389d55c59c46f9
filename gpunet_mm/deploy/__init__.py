"""Deployment and latency: end-to-end export, latency backends, cache and predictor.

* :func:`export_onnx` / :class:`DeployConfig`: mmdet detector -> one ONNX graph ending in
  NMS (``dets [B, N, 5]``, ``labels [B, N]``), for ONNX Runtime or TensorRT.
* :func:`get_backend`: ``'onnxruntime'`` (default), ``'torch'``, ``'tensorrt'`` latency with
  median / p90 / mean and the environment.
* :class:`LatencyCache`: SQLite store so nothing is measured twice.
* :class:`LatencyPredictor`: sub-millisecond latency estimates for the search.

Heavy imports (torch, mmdet, onnx) happen inside the functions that need them.
"""

from .backends import BackendUnavailableError, LatencyResult, available_backends, get_backend
from .cache import LatencyCache, LatencyKey
from .config import DeployConfig, PostProcessing
from .export import (
    End2EndDetector,
    ShapeError,
    UnsupportedModelError,
    build_detector,
    export_onnx,
    make_wrapper,
)
from .latency import LatencyTarget, measure_arch
from .predictor import LatencyPredictor
from .random_archs import sample_random_archs

__all__ = [
    'BackendUnavailableError',
    'DeployConfig',
    'End2EndDetector',
    'LatencyCache',
    'LatencyKey',
    'LatencyPredictor',
    'LatencyResult',
    'LatencyTarget',
    'PostProcessing',
    'ShapeError',
    'UnsupportedModelError',
    'available_backends',
    'build_detector',
    'export_onnx',
    'get_backend',
    'make_wrapper',
    'measure_arch',
    'sample_random_archs',
]
