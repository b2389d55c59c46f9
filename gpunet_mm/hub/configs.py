"""Config files for hub entries: the shipped configs of each tier, and ready-made configs for
architectures that have none (search results).

The shipped configs live in the repository's ``configs/`` (next to the package, as with every
OpenMMLab project installed from source). An entry found by a search carries only its
architecture: :func:`config_for_entry` then starts from the shipped config of the same task
and detector and swaps in ``backbone=dict(type='GPUNet', arch=...)`` with the neck (or head)
widths that the architecture needs, so the result trains and tests like any other config.
"""

from __future__ import annotations

import glob
import os
import os.path as osp
from typing import TYPE_CHECKING, Optional

from .entry import HubEntry, HubError

if TYPE_CHECKING:  # mmengine is imported lazily: listing the hub needs no config machinery
    from mmengine.config import Config

#: detector templates with a shipped config (the tier-0 one serves arch-only entries)
DETECTOR_TEMPLATES = ('retinanet', 'fcos')


def repo_root() -> str:
    return osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def configs_dir() -> str:
    return osp.join(repo_root(), 'configs')


def classification_config(short: str) -> Optional[str]:
    """Repo-relative path of the shipped ImageNet config of a tier (``'0'``, ``'d1'`` ...)."""
    return _one(osp.join('configs', 'gpunet', f'gpunet-{short}_*_in1k.py'))


def detection_config(short: str, detector: str = 'retinanet') -> Optional[str]:
    """Repo-relative path of the shipped COCO config of ``detector`` with tier ``short``."""
    return _one(osp.join('configs', 'gpunet_det', f'{detector}_gpunet-{short}_fpn_*_coco.py'))


def _one(pattern: str) -> Optional[str]:
    root = repo_root()
    found = sorted(glob.glob(osp.join(root, pattern)))
    if not found:
        return None
    if len(found) > 1:
        raise HubError(f'several configs match {pattern}: {found}; keep one per tier')
    return osp.relpath(found[0], root).replace(os.sep, '/')


def resolve_path(path: str) -> str:
    """A config path as given, or relative to the repository root."""
    if osp.isabs(path) or osp.exists(path):
        return path
    return osp.join(repo_root(), path)


def config_for_entry(entry: HubEntry) -> Config:
    """An mmdet / mmpretrain :class:`mmengine.config.Config` that builds ``entry``'s model.

    The entry's own config when it exists; else, for an entry with an arch (one added
    without a config), the shipped template. Search rows (``tools/hub.py import``) always
    get the template with their arch: the config path an imported ``results.json`` names
    is never executed.
    """
    from mmengine.config import Config

    path = resolve_path(entry.config) if entry.config else None
    if entry.provenance.kind == 'search':
        # the path came from an imported results.json, and an mmengine config is Python:
        # it is never executed; the config is made from the arch and the shipped template
        if entry.arch is None:
            raise HubError(f'{entry.name}: a search row without an arch; re-import the run')
        cfg = _config_from_arch(entry)
    elif path and osp.isfile(path):
        cfg = Config.fromfile(path)
    elif entry.arch is not None:  # no config, or a search work_dir that moved
        cfg = _config_from_arch(entry)
    elif path:
        raise HubError(
            f'{entry.name}: its config {entry.config!r} does not exist (looked at {path})'
        )
    else:
        raise HubError(f'{entry.name}: the entry has neither a config nor an arch to build one')
    if entry.checkpoint:
        cfg.load_from = entry.checkpoint
    return cfg


def _config_from_arch(entry: HubEntry) -> Config:
    """The shipped tier-0 config of the entry's task with the entry's arch in it
    (:func:`~gpunet_mm.arch_config.with_arch`); a classifier's pipelines follow the arch's
    resolution, a detector keeps the COCO input size of its template."""
    from mmengine.config import Config

    from ..arch_config import with_arch
    from ..models.arch_spec import GPUNetArch

    arch = GPUNetArch.from_dict(entry.arch)
    if entry.task == 'detection':
        detector = (entry.detector or 'retinanet').lower()
        if detector not in DETECTOR_TEMPLATES:
            raise HubError(
                f'{entry.name}: no shipped config for detector {entry.detector!r}; '
                f'allowed: {", ".join(DETECTOR_TEMPLATES)}'
            )
        template = Config.fromfile(resolve_path(_template(detection_config, detector)))
        return Config(with_arch(template, arch))
    template = Config.fromfile(resolve_path(_template(classification_config)))
    return Config(with_arch(template, arch, resolution=arch.resolution))


def _template(finder, *args) -> str:
    path = finder('0', *args)
    if path is None:
        raise HubError(
            f'no template config found under {configs_dir()} (configs/ ships with the '
            'source checkout: install gpunet_mm from the repository)'
        )
    return path
