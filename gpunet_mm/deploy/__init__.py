"""Deployment and latency: end-to-end export, latency backends, cache and predictor.

* :func:`export_onnx` / :class:`DeployConfig`: mmdet detector -> one ONNX graph ending in
  NMS (``dets [B, N, 5]``, ``labels [B, N]``), for ONNX Runtime or TensorRT.
* :func:`get_backend`: ``'onnxruntime'`` (default), ``'torch'``, ``'tensorrt'`` latency with
  median / p90 / mean and the environment.
* :class:`LatencyCache`: SQLite store so nothing is measured twice.
* :func:`measure_detector`: latency of the whole exported detector (decoding and NMS
  included) of one arch in a detector template on a :class:`LatencyTarget`, cached.
* :class:`LatencyPredictor`: sub-millisecond latency estimates for the search
  (:func:`fit_from_cache` refits one for a new target, :func:`load_demo_predictor`).

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
from .latency import LatencyTarget, detector_latency_key, measure_arch, measure_detector
from .predictor import LatencyPredictor, fit_from_cache, load_demo_predictor
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
    'detector_latency_key',
    'export_onnx',
    'fit_from_cache',
    'get_backend',
    'load_demo_predictor',
    'make_wrapper',
    'measure_arch',
    'measure_detector',
    'sample_random_archs',
]
