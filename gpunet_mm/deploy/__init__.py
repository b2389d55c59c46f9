"""Deployment and latency: end-to-end export, latency backends, cache and predictor.

* :func:`export_onnx` / :class:`DeployConfig`: mmdet detector -> one ONNX graph ending in
  NMS (``dets [B, N, 5]``, ``labels [B, N]``), for ONNX Runtime or TensorRT.
* :func:`get_backend`: ``'onnxruntime'`` (default), ``'torch'``, ``'tensorrt'`` latency with
  median / p90 / mean and the environment.
* :class:`LatencyCache`: SQLite store so nothing is measured twice.
* :func:`measure_latency`: the one latency-measurement service: a whole exported detector
  (decoding and NMS included) or a classifier, one arch in a template on a
  :class:`LatencyTarget`, cached under :func:`latency_key` (:func:`measure_detector`: its
  detector result; :func:`measure_config`: a whole config as it stands).
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
from .latency import (
    LatencyTarget,
    latency_key,
    measure_config,
    measure_detector,
    measure_latency,
)
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
    'export_onnx',
    'fit_from_cache',
    'get_backend',
    'latency_key',
    'load_demo_predictor',
    'make_wrapper',
    'measure_config',
    'measure_detector',
    'measure_latency',
    'sample_random_archs',
]
