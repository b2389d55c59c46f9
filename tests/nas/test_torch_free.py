"""``import gpunet_mm.nas`` works where torch / OpenMMLab are absent (a search server)."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmpretrain')

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'blocked for this test: {name}', name=name)
            return None

    sys.meta_path.insert(0, _Block())
    """
)


def run_blocked(tmp_path, code):
    (tmp_path / 'sitecustomize.py').write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]), OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, '-c', code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_nas_imports_and_searches_without_torch(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit('the blocker did not block torch')
        import gpunet_mm.nas
        from gpunet_mm.nas import LaMCTSBO, GPUNetSpace
        from gpunet_mm.nas.functions import latency_proxy
        opt = LaMCTSBO(GPUNetSpace(), seed=0, minimize=False, constraint_fn=latency_proxy,
                       budget=1.0, n_candidates=100, gp_max_points=30)
        for t in opt.ask(3):
            opt.tell(t, float(t.arch.num_layers))
        import gpunet_mm
        assert gpunet_mm.REGISTERED_SCOPES == []
        bad = [m for m in ('torch', 'mmengine', 'mmpretrain', 'mmdet') if m in sys.modules]
        assert not bad, bad
        print('ok')
        """
    )
    r = run_blocked(tmp_path, code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith('ok')


def test_registration_still_says_what_is_missing(tmp_path):
    code = textwrap.dedent(
        """
        import gpunet_mm
        try:
            gpunet_mm.register_all_modules()
        except ImportError as e:
            print('ImportError', e)
        """
    )
    r = run_blocked(tmp_path, code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'ImportError' in r.stdout and 'blocked' in r.stdout
