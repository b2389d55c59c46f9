"""``_base_ = 'gpunet_mm::...'`` resolves as ``'mmdet::...'`` does, from outside the repo."""

import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MY_CONFIG = """
_base_ = 'gpunet_mm::gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py'
model = dict(backbone=dict(frozen_stages=1))
train_cfg = dict(max_epochs=2)
"""

READ = """
import gpunet_mm  # first: it lets mmengine resolve 'gpunet_mm::'
from mmengine.config import Config
cfg = Config.fromfile('my_retinanet.py')
print(cfg.model.type, cfg.model.backbone.type, cfg.model.backbone.tier,
      cfg.model.backbone.frozen_stages, cfg.train_cfg.max_epochs, cfg.model.get('_scope_'),
      cfg.default_scope, gpunet_mm.__file__)
"""


def test_gpunet_mm_configs_inherit_from_a_directory_outside_the_repo(tmp_path):
    (tmp_path / 'my_retinanet.py').write_text(MY_CONFIG)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, '-c', READ], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, bb, tier, frozen, epochs, scope, default_scope, where = proc.stdout.split()
    assert (kind, bb, frozen, epochs) == ('RetinaNet', 'GPUNet', '1', '2')
    assert tier in ('0', 'GPUNet-0')
    assert where.startswith(ROOT)  # this checkout's package, its configs
    # the modules build in the config's own scope (mmdet), not in a 'gpunet_mm' scope that
    # no registry has; mmengine's pkg_resources use is not the user's business
    assert (scope, default_scope) == ('None', 'mmdet')
    assert 'pkg_resources' not in proc.stderr and 'Failed to search registry' not in proc.stderr


def test_the_mim_folder_holds_configs_tools_and_the_model_index():
    import gpunet_mm
    from gpunet_mm.package_configs import MIM_DIR

    assert MIM_DIR == os.path.join(os.path.dirname(gpunet_mm.__file__), '.mim')
    for rel in (
        'model-index.yml',
        'configs/gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py',
        'configs/_base_/default_runtime_det.py',
        'tools/train.py',
        'tools/nas_search.py',
    ):
        assert os.path.isfile(os.path.join(MIM_DIR, rel)), rel


@pytest.mark.slow
def test_the_wheel_ships_the_mim_folder(tmp_path):
    """A pip-installed gpunet_mm has its configs, tools and model index (as mmdet's)."""
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q']
        + ['-w', str(tmp_path), ROOT],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith('.whl')]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    for rel in (
        'gpunet_mm/.mim/model-index.yml',
        'gpunet_mm/.mim/configs/gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py',
        'gpunet_mm/.mim/configs/gpunet/metafile.yml',
        'gpunet_mm/.mim/tools/train.py',
        'gpunet_mm/.mim/tools/dist_train.sh',
    ):
        assert rel in names, rel
