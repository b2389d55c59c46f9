"""What tools/train.py and tools/test.py share, kept importable for the NAS workers."""

from __future__ import annotations

import os
import os.path as osp
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner

CODEBASES = ('mmdet', 'mmpretrain')


def codebase_of(cfg: Config) -> str:
    """'mmdet' or 'mmpretrain', from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in CODEBASES:
        raise ValueError(
            f'config default_scope: got {scope!r}; allowed: {CODEBASES} '
            '(inherit configs/_base_/default_runtime_det.py or _cls.py)'
        )
    return scope


def load_config(
    path: str, work_dir: Optional[str] = None, cfg_options: Optional[Dict[str, Any]] = None
) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def init_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Start a gloo process group when launched distributed on a machine without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` unconditionally, which fails
    without a GPU; initialising the group here first makes mmengine skip its own init.
    Returns True when this function created the group (the caller destroys it at exit).
    """
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return False
    if launcher != 'pytorch':
        raise ValueError(
            f'launcher {launcher!r} without CUDA: only "pytorch" (torchrun) is supported on CPU'
        )
    dist.init_process_group('gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False
    )
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    return True


def _codebase_registry(codebase: str):
    if codebase == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    elif codebase == 'mmpretrain':
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    else:
        raise ValueError(f'codebase: got {codebase!r}; allowed: {CODEBASES}')
    register_all_modules(init_default_scope=False)
    import gpunet_mm  # noqa: F401  (registers GPUNet into both codebases)

    return MODELS


def build_model(model_cfg: Dict[str, Any], codebase: str) -> torch.nn.Module:
    """Build a model in ``codebase``'s scope, whatever default scope is current.

    mmengine resolves ``type=`` through the *current default scope*, so after, say, an mmdet
    runner ran in this process, building an mmpretrain ``ImageClassifier`` would look in
    mmdet's registry and fail; the explicit scope makes the build order-independent.
    """
    from mmengine.registry import DefaultScope

    registry = _codebase_registry(codebase)
    with DefaultScope.overwrite_default_scope(codebase):
        return registry.build(model_cfg)


def make_runner(cfg: Config, launcher: str = 'none') -> Runner:
    """Build the Runner of the config's codebase (registering its modules first)."""
    _codebase_registry(codebase_of(cfg))
    cfg.launcher = launcher
    os.makedirs(cfg.work_dir, exist_ok=True)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS

        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
