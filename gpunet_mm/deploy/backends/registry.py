"""The registry of latency backends (torch-free, as ``mmengine.registry`` is).

Each backend class carries ``@LATENCY_BACKENDS.register_module(name=...)`` under the name
:func:`~gpunet_mm.deploy.backends.get_backend` and latency targets use
(``'onnxruntime'``, ``'tensorrt'``, ``'torch'``); a plugin registers its own the same way.
"""

from mmengine.registry import Registry

LATENCY_BACKENDS = Registry('latency backend', scope='gpunet_mm')

__all__ = ['LATENCY_BACKENDS']
