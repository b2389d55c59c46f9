"""Registration through the codebases' own mmengine registries, in fresh interpreters."""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_custom_imports_registers_into_mmdet_and_mmpretrain():
    """What a Runner does with custom_imports=dict(imports=['gpunet_mm']), for both scopes."""
    out = _run(
        """
        import json
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmengine.utils import import_modules_from_strings
        from mmdet.registry import MODELS as DET
        from mmpretrain.registry import MODELS as CLS

        assert 'GPUNet' not in DET.module_dict and 'GPUNet' not in CLS.module_dict
        cfg = Config.fromfile('configs/gpunet_det/retinanet_gpunet-0_fpn_1x_coco.py')
        import_modules_from_strings(**cfg.custom_imports)
        with DefaultScope.overwrite_default_scope('mmdet'):
            det = DET.build(dict(type='GPUNet', tier=0, out_indices=(2, 3, 4)))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            clf = CLS.build(
                dict(
                    type='GPUNetClassifier',
                    backbone=dict(type='GPUNet', tier='GPUNet-D1'),
                    neck=dict(type='GlobalAveragePooling'),
                    head=dict(type='GPUNetClsHead', num_classes=10),
                )
            )
        print(json.dumps(dict(
            det=type(det).__name__,
            det_own=DET.module_dict.get('GPUNet') is type(det),
            cls_own=CLS.module_dict.get('GPUNet') is type(det),
            head_in=clf.head.hidden[0].in_features,
        )))
        """
    )
    assert out == dict(det='GPUNet', det_own=True, cls_own=True, head_in=1152)


def test_import_without_mmdet_registers_classification_only():
    out = _run(
        """
        import json, sys
        sys.modules['mmdet'] = None  # import mmdet -> ImportError, as when not installed
        import gpunet_mm
        from mmpretrain.registry import MODELS
        from mmengine.registry import DefaultScope

        with DefaultScope.overwrite_default_scope('mmpretrain'):
            m = MODELS.build(dict(type='GPUNet', tier=0, out_indices=(4,)))
        print(json.dumps(dict(scopes=gpunet_mm.REGISTERED_SCOPES, out=list(m.out_channels),
                              again=gpunet_mm.register_all_modules())))
        """
    )
    assert out == dict(scopes=['mmpretrain'], out=[704], again=['mmpretrain'])
