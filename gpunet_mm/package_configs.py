"""``_base_ = 'gpunet_mm::gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py'``, as with mmdet.

OpenMMLab packages ship their ``configs/``, ``tools/`` and ``model-index.yml`` inside the
package, in ``<package>/.mim/``, and mmengine resolves ``'mmdet::path'`` there. gpunet_mm
does the same (``gpunet_mm/.mim/`` links to the repository's folders, and setup.py ships
them in the wheel). Two things in mmengine need telling:

* mmengine only accepts the package names of its ``MODULE2PACKAGE`` table (mmdet,
  mmpretrain, ...): :func:`register` adds ``gpunet_mm``;
* upstream mmengine 0.10.7 finds a package's folder through ``pkg_resources``, which for an
  editable install (``pip install -e``) or a checkout on ``PYTHONPATH`` names a folder that
  does not exist: for ``gpunet_mm`` the folder is where the imported package lives;
* mmengine gives every module of an inherited ``'pkg::'`` config the registry scope
  ``pkg`` (``_scope_='mmdet'``). gpunet_mm has no registries of its own: its configs are
  mmdet or mmpretrain configs that name their ``default_scope``, so its base files get no
  ``_scope_`` and build in that scope (else mmengine warns "Failed to search registry with
  scope gpunet_mm" for every module).

It also silences mmengine's use of the deprecated ``pkg_resources`` (setuptools' warning on
every ``'pkg::'`` lookup is about mmengine, and nothing a user can act on).

Both happen on ``import gpunet_mm``, which must come before the config is read: the tools
of this package import it first; elsewhere (mmdet's own ``tools/train.py``, a notebook),
``import gpunet_mm`` before ``Config.fromfile``. A config's ``custom_imports`` is read after
its ``_base_`` files, too late for this.
"""

from __future__ import annotations

import os.path as osp
import warnings
from typing import Callable, Optional, Tuple

PACKAGE = 'gpunet_mm'
#: ``gpunet_mm/.mim``: configs/, tools/ and model-index.yml, as mmdet ships them
MIM_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')


def package_dir() -> str:
    return osp.dirname(osp.abspath(__file__))


def _located(original: Callable[[str], str]) -> Callable[[str], str]:
    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            return package_dir()
        return original(package)

    get_installed_path.gpunet_mm_original = original  # type: ignore[attr-defined]
    return get_installed_path


def register() -> bool:
    """Make ``'gpunet_mm::...'`` config paths resolve (see the module docstring); returns
    False where mmengine is not installed. Idempotent."""
    try:
        from mmengine.config import config as config_module
        from mmengine.config import utils as config_utils
    except ImportError:
        return False
    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    current = getattr(config_module, 'get_installed_path', None)
    if current is not None and not hasattr(current, 'gpunet_mm_original'):
        config_module.get_installed_path = _located(current)
    config_cls = config_module.Config
    cfg_path = getattr(config_cls, '_get_cfg_path', None)
    if cfg_path is not None and not hasattr(cfg_path, 'gpunet_mm_original'):
        config_cls._get_cfg_path = staticmethod(_unscoped(cfg_path))
    warnings.filterwarnings(
        'ignore', message='pkg_resources is deprecated as an API', category=UserWarning
    )
    return True


def _unscoped(original: Callable[[str, str], Tuple[str, Optional[str]]]):
    def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
        path, scope = original(cfg_path, filename)
        return path, (None if scope == PACKAGE else scope)

    _get_cfg_path.gpunet_mm_original = original  # type: ignore[attr-defined]
    return _get_cfg_path
