"""gpunet_mm: GPUNet backbones, latency-aware NAS and deployment for the OpenMMLab stack.

Importing the package (directly or via ``custom_imports=dict(imports=['gpunet_mm'])``)
registers ``GPUNet`` and ``GPUNetClsHead`` into mmpretrain's and mmdet's ``MODELS``, and
lets configs inherit the package's own with ``_base_ = 'gpunet_mm::...'``
(:mod:`gpunet_mm.package_configs`).

Where torch or mmpretrain is not installed (a search server, a CPU box that only runs
``gpunet_mm.nas``), the torch-free parts (``gpunet_mm.nas``, ``gpunet_mm.models.arch_spec``
and the tiers) still import; nothing is registered and ``REGISTERED_SCOPES`` is empty.
Only a *missing* package is skipped: an installed but broken torch/mmpretrain still raises.
"""

import importlib.util

from .version import __version__


def _openmmlab_installed() -> bool:
    """Whether torch, mmengine and mmpretrain can be found (without importing them)."""
    for name in ('torch', 'mmengine', 'mmpretrain'):
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # blocked or half-installed: treat as absent
            return False
    return True


if importlib.util.find_spec('mmengine') is not None:
    from . import package_configs

    package_configs.register()  # `_base_ = 'gpunet_mm::...'` resolves, as 'mmdet::...' does

if _openmmlab_installed():
    from . import safe_checkpoint  # noqa: F401  (torch.load / mmengine checkpoint compatibility)
    from .registry import register_all_modules

    REGISTERED_SCOPES = register_all_modules()
else:  # torch-free use (the NAS server): see the module docstring

    def register_all_modules():  # type: ignore[no-redef]
        """Raise the ImportError that says what is missing (registration needs them)."""
        from .registry import register_all_modules as _register

        return _register()

    REGISTERED_SCOPES = []

__all__ = ['__version__', 'register_all_modules', 'REGISTERED_SCOPES']
