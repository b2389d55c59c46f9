"""``import gpunet_mm.nas`` works where torch and the OpenMMLab codebases are absent (a search
server). mmengine, an install requirement, stays: its registry imports no torch."""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = ('torch', 'torchvision', 'mmcv', 'mmdet', 'mmpretrain')

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
        from gpunet_mm.nas.latency_proxy import latency_proxy
        opt = LaMCTSBO(GPUNetSpace(), seed=0, minimize=False, constraint_fn=latency_proxy,
                       budget=1.0, n_candidates=100, gp_max_points=30)
        for t in opt.ask(3):
            opt.tell(t, float(t.arch.num_layers))
        import gpunet_mm
        assert gpunet_mm.REGISTERED_SCOPES == []
        bad = [m for m in ('torch', 'mmcv', 'mmpretrain', 'mmdet') if m in sys.modules]
        assert not bad, bad
        print('ok')
        """
    )
    r = run_blocked(tmp_path, code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith('ok')


def test_nas_registries_build_without_torch(tmp_path):
    """The mmengine registries hold every space, optimiser and test function, and the
    builders use them, with torch blocked and no default scope set."""
    code = textwrap.dedent(
        """
        import json, sys
        from gpunet_mm.nas.registry import NAS_OPTIMIZERS, NAS_SPACES, TEST_FUNCTIONS
        from gpunet_mm.nas import build_optimizer, build_space
        from gpunet_mm.nas.objectives import make_problem

        space = build_space(dict(type='BoxSpace', lower=0.0, upper=1.0, dims=2))
        opt = build_optimizer('random', space, seed=0)
        out = dict(
            spaces=sorted(NAS_SPACES.module_dict),
            optimizers=sorted(NAS_OPTIMIZERS.module_dict),
            functions=sorted(TEST_FUNCTIONS.module_dict),
            built=[type(space).__name__, type(opt).__name__],
            ackley=make_problem('ackley', 2).space.config(),
            loaded=[m for m in ('torch', 'mmcv', 'mmdet', 'mmpretrain') if m in sys.modules],
        )
        print(json.dumps(out))
        """
    )
    r = run_blocked(tmp_path, code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == dict(
        spaces=['BoxSpace', 'DiscreteSpace', 'GPUNetSpace'],
        optimizers=[
            'LaMCTSBO',
            'NevergradSearch',
            'OptunaGPSearch',
            'RandomSearch',
            'RegularizedEvolution',
            'TPESearch',
        ],
        functions=['ackley', 'levy', 'rastrigin'],
        built=['BoxSpace', 'RandomSearch'],
        ackley=dict(type='BoxSpace', lower=[-5.0, -5.0], upper=[10.0, 10.0]),
        loaded=[],
    )


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
