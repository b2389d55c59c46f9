"""Hostile-but-realistic inputs get a clear error (ValueError naming the value), never a deep
traceback or silent acceptance: backbone, arch spec, search space, latency cache, converter
and deploy CLI. Property-based (Hypothesis) where the input space is large.
"""

import json
import math
import os
import sqlite3
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpunet_mm.deploy.backends.base import LatencyResult
from gpunet_mm.deploy.cache import LatencyCache, LatencyCacheError, LatencyKey
from gpunet_mm.models import BlockRow, GPUNetArch, as_arch, get_tier
from gpunet_mm.models.backbones.gpunet import GPUNet
from gpunet_mm.nas import GPUNetSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, 'configs/demo/retinanet_gpunet-0_fpn_demo.py')
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# a small arch (5 levels + tail) so that building and running it is cheap
SMALL = GPUNetArch(
    name='small',
    rows=(
        ('conv', 3, 8, 1, 2),
        ('fused', 3, 16, 1, 2, 2),
        ('irb', 3, 24, 1, 2, 2),
        ('irb', 5, 32, 2, 2, 3, 'swish', True),
        ('irb', 3, 40, 1, 2, 2),
    ),
    tail_channels=(64,),
    resolution=64,
)
NUM_INDICES = len(SMALL.level_strides()) + 1  # levels + tail


# ------------------------------------------------------------------ backbone: out_indices
@FAST
@given(st.sets(st.integers(0, NUM_INDICES - 1), min_size=1), st.data())
def test_declared_channels_and_strides_equal_what_forward_returns(levels, data):
    """For any valid out_indices (negative aliases too), out_channels/out_strides describe
    exactly the tensors forward returns, in order."""
    levels = sorted(levels)
    spelled = tuple(
        i - NUM_INDICES if data.draw(st.booleans(), label=f'negative {i}') else i for i in levels
    )
    net = GPUNet(arch=SMALL, out_indices=spelled).eval()
    with torch.no_grad():
        outs = net(torch.rand(1, 3, 64, 64))
    assert len(outs) == len(net.out_channels) == len(net.out_strides) == len(levels)
    for out, c, s in zip(outs, net.out_channels, net.out_strides):
        assert out.shape[1] == c and out.shape[-1] == 64 // s


@FAST
@given(st.lists(st.integers(0, NUM_INDICES - 1), min_size=2, max_size=4))
def test_unsorted_or_repeated_out_indices_are_rejected(indices):
    if all(b > a for a, b in zip(indices, indices[1:])):
        return  # strictly increasing: valid
    with pytest.raises(ValueError, match=r'out_indices: got .*strictly increasing.*use \('):
        GPUNet(arch=SMALL, out_indices=tuple(indices))


@pytest.mark.parametrize(
    'out_indices, match',
    [
        ((), 'non-empty'),
        ([], 'non-empty'),
        ((4, 2), r'strictly increasing.*use \(2, 4\)'),
        ((2, 2), 'without repeats'),
        ((5, -1), 'without repeats'),
        ((2.0,), 'allowed: integers'),
        ((True,), 'allowed: integers'),
        (('2',), 'allowed: integers'),
        ('2', 'non-empty list'),
        ((99,), r'got 99; allowed for small: -6\.\.5'),
    ],
)
def test_bad_out_indices(out_indices, match):
    with pytest.raises(ValueError, match=match):
        GPUNet(arch=SMALL, out_indices=out_indices)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(act_cfg='relu'), r"act_cfg: got 'relu'; allowed: None or a dict"),
        (dict(act_cfg=dict(type='NoSuchAct')), "act_cfg: type 'NoSuchAct' is not registered"),
        (dict(norm_cfg=dict(type='FancyNorm')), "norm_cfg: type 'FancyNorm' is not registered"),
        (dict(norm_cfg='BN'), 'norm_cfg: got'),
        (dict(conv_cfg=dict(type='Conv9d')), "conv_cfg: type 'Conv9d' is not registered"),
        (dict(frozen_stages=1.5), 'frozen_stages: got 1.5'),
        (dict(frozen_stages=True), 'frozen_stages: got True'),
        (dict(drop_path_rate='0.1'), 'drop_path_rate'),
        (dict(drop_path_rate=math.nan), 'drop_path_rate'),
        # strings are truthy: 'False' would freeze BN, 'no' would turn checkpointing on
        (dict(norm_eval='False'), r"GPUNet\.norm_eval: got 'False'; allowed: True or False"),
        (dict(with_cp='no'), r"GPUNet\.with_cp: got 'no'; allowed: True or False"),
        (dict(with_tail='yes'), r"GPUNet\.with_tail: got 'yes'"),
        (dict(norm_eval=1), r'GPUNet\.norm_eval: got 1'),
        (dict(padding='same'), r"GPUNet\.padding: got 'same'; allowed: 'symmetric' or 'release'"),
        (dict(arch='no/such/arch.json'), 'neither JSON text nor an existing file'),
        (dict(arch=42), "arch: got 'int'"),
    ],
)
def test_bad_backbone_arguments(kwargs, match):
    kwargs.setdefault('arch', SMALL)
    with pytest.raises(ValueError, match=match):
        GPUNet(**kwargs)


def test_arch_file_path_is_read(tmp_path):
    path = tmp_path / 'best_arch.json'
    path.write_text(SMALL.to_json())
    assert GPUNet(arch=str(path)).arch == SMALL
    path.write_text('{"rows": [oops')
    with pytest.raises(ValueError, match=f'arch file {path} is not valid JSON'):
        GPUNet(arch=str(path))


# ------------------------------------------------------------------ arch spec
ROW_FIELDS = dict(
    kernel=st.one_of(st.booleans(), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    out_channels=st.one_of(
        st.booleans(), st.floats(allow_nan=True), st.integers(max_value=0), st.text(max_size=3)
    ),
    num=st.one_of(st.booleans(), st.floats(), st.integers(max_value=0)),
    stride=st.one_of(st.booleans(), st.floats(), st.integers().filter(lambda v: v not in (1, 2))),
    expansion=st.one_of(
        st.booleans(),
        st.just(math.inf),
        st.just(-math.inf),
        st.just(math.nan),
        st.floats(max_value=0),
        st.text(max_size=3),
    ),
    act=st.text(max_size=6).filter(lambda v: v not in ('relu', 'swish')),
    se=st.one_of(st.text(min_size=1, max_size=3), st.integers(2, 9), st.floats(0.1, 0.9)),
)


@FAST
@given(st.sampled_from(sorted(ROW_FIELDS)), st.data())
def test_bad_row_field_is_a_value_error_naming_it(field_name, data):
    value = data.draw(ROW_FIELDS[field_name], label=field_name)
    row = dict(type='irb', kernel=3, out_channels=16, num=1, stride=2, expansion=2, act='relu')
    row[field_name] = value
    rows = [dict(type='conv', kernel=3, out_channels=8, stride=2), row]
    with pytest.raises(ValueError, match=rf'{field_name}: got'):
        GPUNetArch.from_dict(dict(name='x', rows=rows))


@pytest.mark.parametrize(
    'change, match',
    [
        (dict(tail_channels=[True]), 'tail_channels'),
        (dict(tail_channels=[12.7]), 'tail_channels'),
        (dict(tail_channels='1280'), 'tail_channels'),
        (dict(resolution=224.5), 'resolution: got 224.5'),
        (dict(resolution=True), 'resolution: got True'),
        (dict(in_channels='3'), "in_channels: got '3'"),
        (dict(family='resnet'), 'family'),
    ],
)
def test_bad_arch_fields_are_value_errors(change, match):
    d = {**get_tier(0).to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        GPUNetArch.from_dict(d)


def test_se_no_is_not_a_yes():
    with pytest.raises(ValueError, match=r"se: got 'no'; allowed: True or False"):
        BlockRow('irb', 3, 16, se='no').validate()


@FAST
@given(st.text(max_size=20))
def test_as_arch_strings_never_crash_deep(text):
    try:
        as_arch(text)
    except ValueError:
        pass  # the only acceptable failure
    except (OSError, TypeError, AttributeError, KeyError) as e:  # pragma: no cover
        raise AssertionError(f'as_arch({text!r}) raised {e!r}') from e


# ------------------------------------------------------------------ search space
@pytest.mark.parametrize(
    'stages, match',
    [
        ([dict(stage=0, layers=(0, 1))], r'stage 0 layers: got \[0, 1\].*stem'),
        ([dict(stage=3, kernels=(3, 4))], 'stage 3 kernels.*odd integers'),
        ([dict(stage=4, expansions=(2, math.inf))], 'stage 4 expansions'),
        ([dict(stage=4, expansions=(2.5,))], 'stage 4 expansions.*integer'),
        ([dict(stage=5, acts=('relu', 'gelu'))], 'stage 5 acts'),
        ([dict(stage=6, se=('no',))], 'stage 6 se'),
    ],
)
def test_bad_space_is_rejected_at_construction(stages, match):
    with pytest.raises(ValueError, match=match):
        GPUNetSpace(stages=stages)


@settings(max_examples=8, deadline=None)
@given(
    st.integers(0, 7),
    st.lists(st.integers(-2, 9), min_size=1, max_size=3),
    st.integers(0, 3),
)
def test_a_constructed_space_only_proposes_buildable_archs(stage, kernels, low):
    """Whatever the override, either construction fails clearly or every sample builds."""
    try:
        space = GPUNetSpace(
            variant='detection',
            stages=[dict(stage=stage, kernels=tuple(dict.fromkeys(kernels)), layers=(low, 3))],
        )
    except ValueError:
        return
    for x in space.sample(2, rng=0):
        arch = space.decode(x)
        assert arch.layers()[0].stride == 2
        GPUNet(arch=arch, out_indices=(-1,))


# ------------------------------------------------------------------ latency cache
def result(ms: float = 1.0) -> LatencyResult:
    return LatencyResult.from_times(
        [ms, ms], backend='onnxruntime', warmup=1, precision='fp32', batch=1, shape=(64, 64), env={}
    )


KEY = LatencyKey('a' * 16, (64, 64), 1, 'fp32', 'onnxruntime', 'cpu')


def test_cache_garbage_file_names_the_path(tmp_path):
    path = tmp_path / 'lat.sqlite'
    path.write_bytes(b'this is not a database, just text ' * 100)
    with pytest.raises(LatencyCacheError, match=f'{path}.*not an SQLite latency cache'):
        LatencyCache(str(path))


def test_cache_deleted_while_open_names_the_path(tmp_path):
    path = tmp_path / 'lat.sqlite'
    cache = LatencyCache(str(path))
    cache.put(KEY, result())
    for f in tmp_path.iterdir():
        f.unlink()
    with pytest.raises(LatencyCacheError, match=f'{path} was deleted'):
        cache.get(KEY)


def test_cache_path_that_is_a_directory(tmp_path):
    with pytest.raises(LatencyCacheError, match=f'{tmp_path} is a directory'):
        LatencyCache(str(tmp_path))


def test_cache_other_sqlite_file_names_the_path(tmp_path):
    path = tmp_path / 'other.sqlite'
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE latency (x INTEGER)')
    con.commit()
    con.close()
    with pytest.raises(LatencyCacheError, match=str(path)):
        LatencyCache(str(path)).put(KEY, result())


@pytest.mark.skipif(os.geteuid() == 0, reason='root ignores file permissions')
def test_cache_read_only_folder_names_the_path(tmp_path):
    folder = tmp_path / 'ro'
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(LatencyCacheError, match=str(folder / 'lat.sqlite')):
            LatencyCache(str(folder / 'lat.sqlite'))
    finally:
        folder.chmod(0o700)


# ------------------------------------------------------------------ converter
def release_for(tier):
    from gpunet_mm.models.classifiers import build_release_classifier
    from gpunet_mm.models.release_checkpoint import mm_to_release

    torch.manual_seed(0)
    return mm_to_release(build_release_classifier(tier).state_dict(), get_tier(tier))


def test_converter_rejects_a_tensor_of_the_wrong_shape():
    from gpunet_mm.models.release_checkpoint import release_to_mm

    release = release_for('GPUNet-0')
    key = next(k for k in release if k.endswith('conv_dw.weight'))
    release[key] = torch.zeros(release[key].shape[0] + 8, *release[key].shape[1:])
    with pytest.raises(ValueError, match=r'1 tensors do not fit GPUNet-0.*got \('):
        release_to_mm(release, get_tier('GPUNet-0'))


def test_converter_cli_wrong_shape_exits_non_zero(tmp_path):
    release = release_for('GPUNet-0')
    key = next(k for k in release if k.endswith('bn1.running_mean'))
    release[key] = torch.zeros(3)
    src = tmp_path / 'gpunet_0.pth.tar'
    torch.save({'state_dict_ema': release}, src)
    r = subprocess.run(
        [
            sys.executable,
            'tools/model_converters/gpunet_release_to_mm.py',
            str(src),
            str(tmp_path / 'out.pth'),
            '--tier',
            '0',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'),
    )
    assert r.returncode != 0 and 'do not fit GPUNet-0' in r.stderr
    assert 'Traceback' not in r.stderr and not (tmp_path / 'out.pth').exists()


def test_converter_refuses_a_non_dict(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, 'tools', 'model_converters'))
    from gpunet_release_to_mm import convert

    src = tmp_path / 'list.pth'
    torch.save([torch.ones(1)], src)
    with pytest.raises(ValueError, match='holds a list'):
        convert(str(src), str(tmp_path / 'o.pth'), '0')


# ------------------------------------------------------------------ deploy CLI
@pytest.fixture(scope='module')
def seeded_checkpoint(tmp_path_factory):
    """The demo detector with a head that makes confident boxes (so the check compares some)."""
    from gpunet_mm.apis.checkpoint import META_KEY, arch_meta
    from gpunet_mm.deploy.export import build_detector
    from gpunet_mm.deploy.parity import seed_head

    torch.manual_seed(0)
    model = build_detector(DEMO)
    dp = model.data_preprocessor
    seed_head(model, (torch.rand(2, 3, 256, 256) * 255 - dp.mean) / dp.std)
    path = str(tmp_path_factory.mktemp('seeded') / 'seeded.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={META_KEY: arch_meta(model)}), path)
    return path


def test_deploy_fp16_on_cpu_fails_the_gate_with_figures_and_hint(tmp_path, seeded_checkpoint):
    from tools.deploy import main

    argv = [DEMO, seeded_checkpoint, '--shape', '256', '256', '--fp16', '--work-dir']
    with pytest.raises(SystemExit) as e:
        main([*argv, str(tmp_path)])
    msg = str(e.value.code)
    assert 'verification failed' in msg and 'px (allowed 0.5)' in msg
    assert 'fp16 graphs are for GPU backends' in msg and '--no-verify' in msg
    check = json.load(open(tmp_path / 'deploy_summary.json'))['verify']
    assert check['passed'] is False and check['num_dets'] > 0
    assert check['max_abs_diff'] > 0.5 or check['labels_equal'] < 0.99


@pytest.mark.slow
def test_deploy_fp32_with_detections_passes_the_gate(tmp_path, seeded_checkpoint, capsys):
    from tools.deploy import main

    main([DEMO, seeded_checkpoint, '--shape', '256', '256', '--work-dir', str(tmp_path)])
    check = json.load(open(tmp_path / 'deploy_summary.json'))['verify']
    assert check['passed'] is True and check['num_dets'] > 0 and check['max_abs_diff'] < 1e-2


@pytest.mark.parametrize(
    'argv, match',
    [
        (['--shape', '0', '256'], 'shape|input_shape'),
        (['--shape', '256', '256', '--batch', '0'], 'batch'),
        (['--shape', '256', '256', '--score-thr', '2'], 'score'),
        (['--shape', '256', '256', '--backend', 'openvino'], 'onnxruntime, tensorrt'),
    ],
)
def test_deploy_bad_arguments_exit_with_a_message(tmp_path, argv, match):
    from tools.deploy import main

    with pytest.raises(SystemExit, match=match):
        main([DEMO, *argv, '--work-dir', str(tmp_path)])


def test_deploy_missing_checkpoint_exits_naming_it(tmp_path):
    from tools.deploy import main

    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(SystemExit, match='nope.pth'):
        main([DEMO, missing, '--shape', '256', '256', '--work-dir', str(tmp_path)])


def test_cache_whose_folder_cannot_be_created_names_the_path(tmp_path):
    blocker = tmp_path / 'results'
    blocker.write_text('a file where the cache folder should be')
    with pytest.raises(LatencyCacheError, match=f'{blocker}/lat.sqlite: cannot create its folder'):
        LatencyCache(str(blocker / 'lat.sqlite'))
