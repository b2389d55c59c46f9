from .gpunet import GPUNet, build_block, resolve_arch

__all__ = ['GPUNet', 'build_block', 'resolve_arch']
