"""The mmengine registries behind build_space / build_optimizer, and config round trips.

``config()`` output is what state files and the search journal keep, so every registered
space and optimiser must rebuild from it: ``build(x.config()).config() == x.config()``.
"""

import importlib.util
import inspect
import json

import numpy as np
import pytest

from gpunet_mm.nas import METHODS, LaMCTSBO, build_optimizer, build_space
from gpunet_mm.nas.objectives import TEST_FUNCTIONS, BenchmarkFunction, ackley, make_problem
from gpunet_mm.nas.registry import NAS_OPTIMIZERS, NAS_SPACES, lookup
from gpunet_mm.nas.space import SearchSpace

#: one config per registered space, with non-default settings where a space has them
SPACE_CONFIGS = {
    'BoxSpace': dict(type='BoxSpace', lower=[-1.0, 0.0], upper=[1.0, 5.0]),
    'DiscreteSpace': dict(
        type='DiscreteSpace',
        dims=[
            dict(name='a', choices=[1, 2, 4], ordinal=True),
            dict(name='b', choices=['x', 'y', 'z'], ordinal=False),
        ],
    ),
    'GPUNetSpace': dict(
        type='GPUNetSpace',
        variant='detection',
        resolutions=[384, 320],
        stages=[dict(stage=7, layers=(0, 4)), dict(stage=2, kernels=[3])],
        name_prefix='rt',
    ),
}

#: one config per registered optimiser, with non-default settings
OPTIMIZER_CONFIGS = {
    'LaMCTSBO': dict(
        type='LaMCTSBO',
        n_init=6,
        priors='none',
        n_candidates=50,
        length_init=0.4,
        length_max=1.2,
        failure_tol=7,
        batch_strategy='constant_liar',
    ),
    'RandomSearch': dict(type='RandomSearch'),
    'RegularizedEvolution': dict(
        type='RegularizedEvolution', population_size=8, sample_size=3, max_mutation_tries=9
    ),
    'TPESearch': dict(type='TPESearch', n_startup_trials=4, max_retries=4),
    'OptunaGPSearch': dict(type='OptunaGPSearch', n_startup_trials=4, max_retries=5),
    'NevergradSearch': dict(type='NevergradSearch', horizon=40, max_retries=6),
}

#: constructor settings a state keeps beside ``config()`` (Optimizer.state_dict), or that
#: ``config()`` spells another way (LaMCTSBO's ``length`` / ``tols``); ``store`` is where the
#: trials live, not a setting
KEPT_ELSEWHERE = {'seed', 'minimize', 'constraint_fn', 'budget', 'calibration_quantile', 'store'}
SPELLED_AS = {'LaMCTSBO': {'length_init', 'length_min', 'length_max', 'success_tol', 'failure_tol'}}


def _settings(cls) -> set:
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is not None:
            names |= {
                n for n, p in inspect.signature(init).parameters.items() if p.kind == p.KEYWORD_ONLY
            }
    return names


NEEDS = {'TPESearch': 'optuna', 'OptunaGPSearch': 'optuna', 'NevergradSearch': 'nevergrad'}


def test_every_registered_class_has_a_round_trip_config():
    assert set(SPACE_CONFIGS) == set(NAS_SPACES.module_dict)
    assert set(OPTIMIZER_CONFIGS) == set(NAS_OPTIMIZERS.module_dict)
    assert set(METHODS.values()) <= set(NAS_OPTIMIZERS.module_dict)


@pytest.mark.parametrize('kind', sorted(SPACE_CONFIGS))
def test_space_rebuilds_from_its_config(kind):
    space = build_space(SPACE_CONFIGS[kind])
    cfg = json.loads(json.dumps(space.config()))  # as a state file or the journal keeps it
    again = build_space(cfg)
    assert type(again) is NAS_SPACES.module_dict[kind]
    assert again.config() == space.config()
    assert again == space and again.dims == space.dims


@pytest.mark.parametrize('kind', sorted(OPTIMIZER_CONFIGS))
def test_config_holds_every_constructor_setting(kind):
    """A setting left out of config() silently reverts to its default on a rebuild."""
    if kind in NEEDS and importlib.util.find_spec(NEEDS[kind]) is None:
        pytest.skip(f'{NEEDS[kind]} (optional) is not installed')
    cls = NAS_OPTIMIZERS.module_dict[kind]
    opt = build_optimizer(dict(type=kind), build_space(SPACE_CONFIGS['BoxSpace']))
    wanted = _settings(cls) - KEPT_ELSEWHERE - SPELLED_AS.get(kind, set())
    assert wanted <= set(opt.config()), sorted(wanted - set(opt.config()))


def test_a_state_from_before_a_setting_was_kept_loads_when_it_is_the_default():
    space = build_space(SPACE_CONFIGS['BoxSpace'])
    opt = build_optimizer(dict(type='RegularizedEvolution'), space, seed=1)
    for t in opt.ask(3):
        opt.tell(t, float(ackley(np.asarray(t.x))))
    state = json.loads(json.dumps(opt.state_dict()))
    del state['optimizer']['max_mutation_tries']  # as written by an older version
    same = build_optimizer(dict(type='RegularizedEvolution'), space, seed=1)
    same.load_state_dict(state)
    assert [t.x for t in same.ask(2)] == [t.x for t in opt.ask(2)]
    other = build_optimizer(dict(type='RegularizedEvolution', max_mutation_tries=9), space)
    with pytest.raises(ValueError, match="saved optimizer .* differs .*'max_mutation_tries': 9"):
        other.load_state_dict(state)


@pytest.mark.parametrize('kind', sorted(OPTIMIZER_CONFIGS))
def test_optimizer_rebuilds_from_its_config(kind):
    if kind in NEEDS and importlib.util.find_spec(NEEDS[kind]) is None:
        pytest.skip(f'{NEEDS[kind]} (optional) is not installed')
    space = build_space(SPACE_CONFIGS['BoxSpace'])
    opt = build_optimizer(OPTIMIZER_CONFIGS[kind], space, seed=3)
    cfg = json.loads(json.dumps(opt.config()))
    again = build_optimizer(cfg, space, seed=3)
    assert type(again) is NAS_OPTIMIZERS.module_dict[kind]
    assert again.config() == opt.config()
    # the settings given, not only their spelling, survive
    for key, value in OPTIMIZER_CONFIGS[kind].items():
        if hasattr(again, key):
            assert getattr(again, key) == value, key


def test_lamcts_config_spelling_is_unchanged_and_accepted():
    """``length``/``tols`` are what saved states hold: the constructor takes them too."""
    opt = LaMCTSBO(build_space(SPACE_CONFIGS['BoxSpace']), length_init=0.4, failure_tol=7)
    cfg = opt.config()
    assert cfg['length'] == [0.4, 0.5**7, 1.6] and cfg['tols'] == [3, 7]
    assert 'length_init' not in cfg and 'failure_tol' not in cfg
    same = LaMCTSBO(opt.space, length=[0.4, 0.5**7, 1.6], tols=[3, 7])
    assert same.config() == cfg
    with pytest.raises(ValueError, match=r'length=\[0.4, 0.1, 1.6\] and length_init: got both'):
        LaMCTSBO(opt.space, length=[0.4, 0.1, 1.6], length_init=0.5)
    with pytest.raises(ValueError, match=r'tols: got \[3\]; allowed: a list \[success_tol, fail'):
        LaMCTSBO(opt.space, tols=[3])
    with pytest.raises(ValueError, match='trust region lengths'):
        LaMCTSBO(opt.space, length=[0.4, 0.9, 1.6])


def test_a_saved_state_alone_rebuilds_and_resumes_its_optimizer():
    """The optimiser and space configs inside a state (with ``length``/``tols``) build an
    optimiser that loads the state and proposes exactly what the original would."""
    space = build_space(SPACE_CONFIGS['BoxSpace'])
    opt = build_optimizer(OPTIMIZER_CONFIGS['LaMCTSBO'], space, seed=5)
    for t in opt.ask(8):
        opt.tell(t, float(ackley(np.asarray(t.x))))
    state = json.loads(json.dumps(opt.state_dict()))
    assert 'length' in state['optimizer'] and 'tols' in state['optimizer']
    resumed = build_optimizer(state['optimizer'], build_space(state['space']), seed=state['seed'])
    resumed.load_state_dict(state)
    assert [t.x for t in resumed.ask(2)] == [t.x for t in opt.ask(2)]


def test_unknown_types_name_the_value_and_the_registered_ones():
    space = build_space(SPACE_CONFIGS['BoxSpace'])
    with pytest.raises(ValueError) as e:
        build_optimizer('hyperband', space)
    msg = str(e.value)
    assert "optimizer type: got 'hyperband'; allowed: " in msg
    assert all(name in msg for name in list(NAS_OPTIMIZERS.module_dict) + list(METHODS))
    with pytest.raises(ValueError, match="space type: got 'NoSuch'; allowed: BoxSpace, Discrete"):
        build_space(dict(type='NoSuch'))
    # Registry.get would import a dotted path; the builders accept registered names only
    with pytest.raises(ValueError, match="got 'os.path.join'"):
        build_space(dict(type='os.path.join'))
    with pytest.raises(ValueError, match=r'thing: got \[1\]; allowed: BoxSpace'):
        lookup(NAS_SPACES, [1], 'thing')


def test_a_plugin_space_registers_and_builds_by_type():
    @NAS_SPACES.register_module()
    class PluginBox(NAS_SPACES.module_dict['BoxSpace']):
        type_name = 'PluginBox'

    try:
        space = build_space(dict(type='PluginBox', lower=0.0, upper=1.0, dims=2))
        assert isinstance(space, PluginBox) and isinstance(space, SearchSpace)
        assert build_space(space.config()) == space
    finally:
        NAS_SPACES.module_dict.pop('PluginBox')


def test_test_functions_carry_their_domain():
    fn = TEST_FUNCTIONS.module_dict['ackley']
    assert isinstance(fn, BenchmarkFunction) and fn.fn is ackley
    assert (fn.lower, fn.upper) == (-5.0, 10.0)
    assert float(fn(np.zeros(3))) == pytest.approx(0.0, abs=1e-12)
    assert make_problem('rastrigin', 2).space.config() == dict(
        type='BoxSpace', lower=[-5.12, -5.12], upper=[5.12, 5.12]
    )


def test_a_lookup_in_gpunet_mms_registries_logs_no_false_not_installed_warning():
    """gpunet_mm puts itself in mmengine's MODULE2PACKAGE (``gpunet_mm::`` config paths), so
    a registry of its scope without ``locations`` made mmengine try ``gpunet_mm.utils`` on
    the first ``get`` and log "gpunet_mm is not installed" in every search run. A fresh
    process, since mmengine imports a registry's locations once."""
    import subprocess
    import sys

    code = (
        'import gpunet_mm.nas\n'
        'from gpunet_mm.nas.registry import NAS_OPTIMIZERS, NAS_SPACES, TEST_FUNCTIONS\n'
        'from gpunet_mm.deploy.backends.registry import LATENCY_BACKENDS\n'
        'from mmengine.config.utils import MODULE2PACKAGE\n'
        'assert "gpunet_mm" in MODULE2PACKAGE\n'
        'print(NAS_SPACES.get("GPUNetSpace").__name__,\n'
        '      NAS_OPTIMIZERS.get("LaMCTSBO").__name__,\n'
        '      TEST_FUNCTIONS.get("no-such-function"),\n'
        '      LATENCY_BACKENDS.get("onnxruntime").__name__)\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ['GPUNetSpace', 'LaMCTSBO', 'None', 'OnnxRuntimeBackend']
    assert 'not installed' not in out.stdout + out.stderr
    assert 'WARNING' not in out.stdout + out.stderr
