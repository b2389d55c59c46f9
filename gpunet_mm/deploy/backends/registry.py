"""The registry of latency backends (torch-free, as ``mmengine.registry`` is).

Each backend class carries ``@LATENCY_BACKENDS.register_module(name=...)`` under the name
:func:`~gpunet_mm.deploy.backends.get_backend` and latency targets use
(``'onnxruntime'``, ``'tensorrt'``, ``'torch'``); a plugin registers its own the same way.
"""

from mmengine.registry import Registry

# ``locations`` (imported by mmengine before the first ``get``): without it mmengine tries
# ``gpunet_mm.utils`` and logs a false "gpunet_mm is not installed" (gpunet_mm/nas/registry.py)
LATENCY_BACKENDS = Registry(
    'latency backend', scope='gpunet_mm', locations=['gpunet_mm.deploy.backends']
)

__all__ = ['LATENCY_BACKENDS']
