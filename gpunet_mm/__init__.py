"""gpunet_mm: GPUNet backbones, latency-aware NAS and deployment for the OpenMMLab stack.

Importing the package (directly or via ``custom_imports=dict(imports=['gpunet_mm'])``)
registers ``GPUNet`` and ``GPUNetClsHead`` into mmpretrain's and mmdet's ``MODELS``.
"""

from . import compat  # noqa: F401  (torch.load / mmengine checkpoint compatibility)
from .registry import register_all_modules
from .version import __version__

REGISTERED_SCOPES = register_all_modules()

__all__ = ['__version__', 'register_all_modules', 'REGISTERED_SCOPES']
