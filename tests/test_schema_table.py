"""Every user-supplied structure is checked at the door by one schema layer (issue 20).

One table: each row is a hostile-but-realistic input on one surface (the ``nas`` dict and its
nested dicts, ``latency_target``, ``search_space``, ``predictor``, backbone arguments, the
arch's bounds, latency-cache rows, predictor JSON files, hub rows, results.json) and the
key path the error must name. Every error must also show the value (or say the key is
missing / unknown) and what is allowed, and never be a traceback from deep inside.
Torch-free surfaces only here: the backbone's string booleans are in test_hostile_inputs.
"""

import json
import math
import os
import sqlite3

import pytest

from gpunet_mm.schema import (
    GPUNetArgs,
    LatencyTargetSettings,
    PredictorSettings,
    SchemaError,
    SearchSpaceSettings,
    validate,
)

NAN, INF = math.nan, math.inf


def nas(**given):
    from gpunet_mm.search.api import nas_settings

    return lambda tmp: nas_settings({'nas': given})


def schema(model, where, **given):
    return lambda tmp: validate(model, given, where)


def space(**given):
    from gpunet_mm.nas import build_space

    return lambda tmp: build_space(dict(dict(type='GPUNetSpace', variant='detection'), **given))


def optimizer(**given):
    from gpunet_mm.nas import build_optimizer

    def build(tmp):
        cfg = dict(dict(type='LaMCTSBO'), **given)
        space = dict(type='GPUNetSpace', variant='detection', resolutions=[320])
        return build_optimizer(cfg, space, constraint_fn=lambda a: 1.0, budget=2.0)

    return build


def arch(**row_changes):
    from gpunet_mm.models import GPUNetArch

    def build(tmp):
        row = dict(type='irb', kernel=3, out_channels=32, num=2, stride=2, expansion=4.0)
        row.update(row_changes.pop('row', {}))
        top = dict(name='x', rows=[dict(type='conv', kernel=3, out_channels=16, num=1, stride=2)])
        top['rows'].append(row)
        top.update(row_changes)
        return GPUNetArch.from_dict(top)

    return build


def cache_row(**result):
    """A latency-cache row whose stored result was edited by hand."""

    def build(tmp):
        from gpunet_mm.deploy.backends.base import LatencyResult
        from gpunet_mm.deploy.cache import LatencyCache, LatencyKey

        path = str(tmp / 'cache.sqlite')
        cache = LatencyCache(path)
        key = LatencyKey('a' * 16, (64, 64), 1, 'fp32', 'onnxruntime', 'cpu')
        good = LatencyResult(
            backend='onnxruntime',
            median_ms=1.0,
            p90_ms=1.1,
            mean_ms=1.0,
            min_ms=0.9,
            std_ms=0.1,
            iters=5,
            warmup=1,
            precision='fp32',
            batch=1,
            shape=(64, 64),
        )
        cache.put(key, good)
        d = good.to_dict()
        d.update(result)
        con = sqlite3.connect(path)
        con.execute('UPDATE latency SET result=?', (json.dumps(d),))
        con.commit()
        con.close()
        return cache.get(key)

    return build


def predictor_file(text):
    def build(tmp):
        from gpunet_mm.deploy import LatencyPredictor

        path = tmp / 'pred.json'
        path.write_text(text if isinstance(text, str) else json.dumps(text))
        return LatencyPredictor.load(str(path))

    return build


def hub_row(**changes):
    """A user hub file whose one row was edited by hand."""

    def build(tmp):
        from gpunet_mm.hub import ModelHub

        row = dict(
            name='mine',
            task='classification',
            input_shape=[224, 224],
            batch=1,
            device='T4',
            backend='tensorrt',
            precision='fp16',
            latency_ms=0.5,
            latency_stat='median',
            tier='GPUNet-0',
            provenance=dict(kind='measured', tool='x', date='2026-01-01', environment={'a': 1}),
        )
        row.update(changes)
        path = tmp / 'hub.jsonl'
        path.write_text('{"gpunet_mm_hub": 1}\n' + json.dumps(row) + '\n')
        return ModelHub(str(path)).entries()

    return build


def results(edit):
    """A results.json (the hub test fixture's) with one hostile edit."""

    def build(tmp):
        from gpunet_mm.hub.search_import import load_results

        src = os.path.join(os.path.dirname(__file__), 'hub', 'data', 'nas_det_demo')
        with open(os.path.join(src, 'results.json')) as f:
            data = json.load(f)
        edit(data)
        (tmp / 'results.json').write_text(json.dumps(data))
        return load_results(str(tmp))

    return build


def zero_byte_image(surface):
    """A COCO dataset whose second image file is 0 bytes (an interrupted copy), read by
    ``surface``: the training/test door, the search's door, or one image (parity, demo)."""

    def build(tmp):
        (tmp / 'img').mkdir()
        (tmp / 'img' / 'a.jpg').write_bytes(b'\xff\xd8 not empty')
        (tmp / 'img' / 'b.jpg').write_bytes(b'')
        images = [dict(id=i, file_name=f'{n}.jpg', width=8, height=8) for i, n in enumerate('ab')]
        ann = dict(images=images, annotations=[], categories=[dict(id=1, name='x')])
        (tmp / 'ann.json').write_text(json.dumps(ann))
        ds = dict(data_root=str(tmp), ann_file='ann.json', data_prefix=dict(img='img/'))
        if surface == 'train':
            from mmengine.config import Config

            from gpunet_mm.apis import check_dataset_files

            return check_dataset_files(Config(dict(train_dataloader=dict(dataset=ds))))
        if surface == 'search':
            from gpunet_mm.search.api import check_data

            return check_data(dict(train_dataloader=dict(dataset=ds)))
        from gpunet_mm.apis import check_image

        return check_image(str(tmp / 'img' / 'b.jpg'))

    return build


def _set(path, value):
    def edit(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value

    return edit


def _drop(path):
    def edit(d):
        *head, last = path
        for k in head:
            d = d[k]
        del d[last]

    return edit


TARGET = 'latency_target'
# (id, build, the key path the message must name, a text it must show)
CASES = [
    # ---- nas: the examples of the issue, then every key
    ('nas.seed=abc', nas(seed='abc'), 'nas.seed', "'abc'"),
    ('nas.seed=-1', nas(seed=-1), 'nas.seed', '-1'),
    ('nas.seed=1.5', nas(seed=1.5), 'nas.seed', '1.5'),
    ('nas.references=str', nas(references='GPUNet-0'), 'nas.references', "'GPUNet-0'"),
    ('nas.references=[1]', nas(references=[1]), 'nas.references[0]', '1'),
    ('nas.metric=123', nas(metric=123), 'nas.metric', '123'),
    ('nas.metric=empty', nas(metric=''), 'nas.metric', "''"),
    ('nas.num_trials=0', nas(num_trials=0), 'nas.num_trials', '0'),
    ('nas.num_trials=True', nas(num_trials=True), 'nas.num_trials', 'True'),
    ('nas.num_trials=str', nas(num_trials='5'), 'nas.num_trials', "'5'"),
    ('nas.num_workers=0', nas(num_workers=0), 'nas.num_workers', '0'),
    ('nas.max_attempts=1e9', nas(max_attempts=10**9), 'nas.max_attempts', '1000000000'),
    (
        'nas.max_consecutive_failures=0',
        nas(max_consecutive_failures=0),
        'nas.max_consecutive_failures',
        'greater than or equal to 1',
    ),
    ('nas.lease_s=nan', nas(lease_s=NAN), 'nas.lease_s', 'nan'),
    ('nas.lease_s=-1', nas(lease_s=-1), 'nas.lease_s', '-1'),
    ('nas.trial_timeout_s=0', nas(trial_timeout_s=0), 'nas.trial_timeout_s', '0'),
    ('nas.propose_ahead=-1', nas(propose_ahead=-1), 'nas.propose_ahead', '-1'),
    ('nas.ask_batch=0', nas(ask_batch=0), 'nas.ask_batch', '0'),
    ('nas.ask_min=2.5', nas(ask_min=2.5), 'nas.ask_min', '2.5'),
    ('nas.threads=0', nas(threads=0), 'nas.threads', '0'),
    ('nas.calibration_samples=-1', nas(calibration_samples=-1), 'nas.calibration_samples', '-1'),
    ('nas.nproc_per_trial=0', nas(nproc_per_trial=0), 'nas.nproc_per_trial', '0'),
    ('nas.budgets=str', nas(budgets='40'), 'nas.budgets', "'40'"),
    ('nas.budgets=[]', nas(budgets=[]), 'nas.budgets', '[]'),
    ('nas.budgets=[-1]', nas(budgets=[-1]), 'nas.budgets[0]', '-1'),
    ('nas.budgets=[nan]', nas(budgets=[NAN]), 'nas.budgets[0]', 'nan'),
    ('nas.budgets=[fast]', nas(budgets=['very fast']), 'nas.budgets[0]', "'very fast'"),
    ('nas.budgets=[True]', nas(budgets=[True]), 'nas.budgets[0]', 'True'),
    ('nas.budgets=[0*tier]', nas(budgets=['0*GPUNet-0']), 'nas.budgets[0]', '0*GPUNet-0'),
    ('nas.unknown', nas(epochs=3), 'nas.epochs', 'unknown key'),
    ('nas.simulate.sigma=nan', nas(simulate=dict(duration_sigma=NAN)), 'duration_sigma', 'nan'),
    ('nas.simulate.sigma=inf', nas(simulate=dict(duration_sigma=INF)), 'duration_sigma', 'inf'),
    ('nas.simulate.sigma<0', nas(simulate=dict(duration_sigma=-0.1)), 'duration_sigma', '-0.1'),
    ('nas.simulate.mean=0', nas(simulate=dict(mean_trial_s=0)), 'simulate.mean_trial_s', '0'),
    ('nas.simulate.fail=1', nas(simulate=dict(failure_rate=1.0)), 'simulate.failure_rate', '1.0'),
    ('nas.simulate.workers=0', nas(simulate=dict(num_workers=0)), 'simulate.num_workers', '0'),
    ('nas.simulate.unknown', nas(simulate=dict(workers=4)), 'nas.simulate.workers', 'unknown key'),
    ('nas.simulate=str', nas(simulate='yes'), 'nas.simulate', "'yes'"),
    ('nas.resources.unknown', nas(resources=dict(num_cpu=1)), 'resources.num_cpu', 'unknown key'),
    ('nas.resources.gpus<0', nas(resources=dict(num_gpus=-1)), 'resources.num_gpus', '-1'),
    ('nas.resources=str', nas(resources='1cpu'), 'nas.resources', "'1cpu'"),
    ('nas=str', lambda tmp: _nas_raw('abc'), 'nas', "'abc'"),
    # ---- nas: the multi-fidelity keys (issue 17), typed by the schema too
    ('nas.fidelity=str', nas(fidelity='rungs'), 'nas.fidelity', "'rungs'"),
    ('nas.fidelity.min_epochs', nas(fidelity=dict(eta=3)), 'fidelity.min_epochs', 'missing'),
    ('nas.fidelity.min_epochs=0', nas(fidelity=dict(min_epochs=0)), 'min_epochs', '0'),
    ('nas.fidelity.min_epochs=str', nas(fidelity=dict(min_epochs='1')), 'min_epochs', "'1'"),
    ('nas.fidelity.eta=1', nas(fidelity=dict(min_epochs=1, eta=1)), 'fidelity.eta', '1'),
    ('nas.fidelity.eta=2.5', nas(fidelity=dict(min_epochs=1, eta=2.5)), 'fidelity.eta', '2.5'),
    (
        'nas.fidelity.max_epochs=True',
        nas(fidelity=dict(min_epochs=1, max_epochs=True)),
        'fidelity.max_epochs',
        'True',
    ),
    (
        'nas.fidelity.min_observations=0',
        nas(fidelity=dict(min_epochs=1, min_observations=0)),
        'fidelity.min_observations',
        '0',
    ),
    (
        'nas.fidelity.model',
        nas(fidelity=dict(min_epochs=1, model='curve')),
        'fidelity.model',
        "'curve'",
    ),
    (
        'nas.fidelity.unknown',
        nas(fidelity=dict(min_epochs=1, rungs=3)),
        'nas.fidelity.rungs',
        'unknown key',
    ),
    ('nas.compute_budget=-3', nas(compute_budget=-3), 'nas.compute_budget', '-3'),
    ('nas.compute_budget=nan', nas(compute_budget=NAN), 'nas.compute_budget', 'nan'),
    ('nas.compute_budget=str', nas(compute_budget='40'), 'nas.compute_budget', "'40'"),
    ('nas.final=int', nas(final=2), 'nas.final', '2'),
    ('nas.final.top_k=0', nas(final=dict(top_k=0)), 'nas.final.top_k', '0'),
    ('nas.final.top_k=str', nas(final=dict(top_k='2')), 'nas.final.top_k', "'2'"),
    ('nas.final.schedule=str', nas(final=dict(schedule='12e')), 'final.schedule', "'12e'"),
    ('nas.final.unknown', nas(final=dict(topk=2)), 'nas.final.topk', 'unknown key'),
    (
        'nas.simulate.objective=int',
        nas(simulate=dict(objective=3)),
        'nas.simulate.objective',
        '3',
    ),
    (
        'nas.simulate.objective no function',
        nas(simulate=dict(objective='tests.search.curve_objective')),
        'simulate.objective',
        "'tests.search.curve_objective'",
    ),
    # ---- latency_target, search_space, predictor
    ('target.backend', schema(LatencyTargetSettings, TARGET, backend='onnx'), 'backend', 'onnx'),
    ('target.device', schema(LatencyTargetSettings, TARGET, device='gpu'), 'device', "'gpu'"),
    (
        'target.precision',
        schema(LatencyTargetSettings, TARGET, precision='fp8'),
        'precision',
        'fp8',
    ),
    ('target.batch=0', schema(LatencyTargetSettings, TARGET, batch=0), 'target.batch', '0'),
    ('target.threads=str', schema(LatencyTargetSettings, TARGET, threads='4'), 'threads', "'4'"),
    ('target.iters=0', schema(LatencyTargetSettings, TARGET, iters=0), 'target.iters', '0'),
    ('target.warmup<0', schema(LatencyTargetSettings, TARGET, warmup=-1), 'target.warmup', '-1'),
    ('target.shape=[256]', schema(LatencyTargetSettings, TARGET, shape=[256]), 'shape', '[256]'),
    ('target.shape=[0,9]', schema(LatencyTargetSettings, TARGET, shape=[0, 9]), 'shape[0]', '0'),
    (
        'target.score_fraction',
        schema(LatencyTargetSettings, TARGET, score_fraction=1.5),
        'score_fraction',
        '1.5',
    ),
    ('target.clock', schema(LatencyTargetSettings, TARGET, clock='cpu-time'), 'clock', 'cpu-time'),
    (
        'target.exclusive=str',
        schema(LatencyTargetSettings, TARGET, exclusive='no'),
        'exclusive',
        "'no'",
    ),
    (
        'target.unknown',
        schema(LatencyTargetSettings, TARGET, iter=30),
        'target.iter',
        'unknown key',
    ),
    (
        'search_space.type=int',
        schema(SearchSpaceSettings, 'search_space', type=123),
        'search_space.type',
        '123',
    ),
    (
        'search_space.no type',
        schema(SearchSpaceSettings, 'search_space', variant='x'),
        'search_space.type',
        'missing',
    ),
    ('space.resolutions=str', space(resolutions='320'), 'search_space.resolutions', "'320'"),
    ('space.resolutions=[320.5]', space(resolutions=[320.5]), 'resolutions[0]', '320.5'),
    ('space.unknown', space(resolution=[320]), 'search_space.resolution', 'unknown key'),
    ('space.variant', space(variant='segmentation'), 'variant', "'segmentation'"),
    ('optimizer.n_init=str', optimizer(n_init='4'), 'search_optimizer.n_init', "'4'"),
    ('optimizer.seed=str', optimizer(type='RandomSearch', seed='x'), 'optimizer.seed', "'x'"),
    ('optimizer.unknown', optimizer(n_inti=4), 'search_optimizer.n_inti', 'unknown key'),
    (
        'predictor.path=int',
        schema(PredictorSettings, 'predictor', path=123),
        'predictor.path',
        '123',
    ),
    (
        'predictor.unknown',
        schema(PredictorSettings, 'predictor', file='p.json'),
        'predictor.file',
        'unknown key',
    ),
    (
        'predictor.refit.models',
        schema(PredictorSettings, 'predictor', refit=dict(models=['ratio'])),
        'predictor.refit.models[0]',
        "'ratio'",
    ),
    (
        'predictor.refit.halflife=0',
        schema(PredictorSettings, 'predictor', refit=dict(halflife=0.0)),
        'predictor.refit.halflife',
        '0.0',
    ),
    (
        'predictor.refit.rescale=0',
        schema(PredictorSettings, 'predictor', refit=dict(rescale=0)),
        'predictor.refit.rescale',
        '0',
    ),
    # ---- backbone arguments (the schema; the GPUNet class is in test_hostile_inputs)
    (
        'GPUNet.norm_eval=str',
        schema(GPUNetArgs, 'GPUNet', norm_eval='False'),
        'norm_eval',
        "'False'",
    ),
    ('GPUNet.with_cp=str', schema(GPUNetArgs, 'GPUNet', with_cp='no'), 'with_cp', "'no'"),
    ('GPUNet.with_cp=1', schema(GPUNetArgs, 'GPUNet', with_cp=1), 'with_cp', '1'),
    ('GPUNet.with_tail=str', schema(GPUNetArgs, 'GPUNet', with_tail='yes'), 'with_tail', "'yes'"),
    ('GPUNet.padding', schema(GPUNetArgs, 'GPUNet', padding='same'), 'GPUNet.padding', "'same'"),
    (
        'GPUNet.frozen_stages=str',
        schema(GPUNetArgs, 'GPUNet', frozen_stages='1'),
        'frozen_stages',
        "'1'",
    ),
    (
        'GPUNet.drop_path=inf',
        schema(GPUNetArgs, 'GPUNet', drop_path_rate=INF),
        'drop_path_rate',
        'inf',
    ),
    # ---- the arch's sane upper bounds
    ('arch.expansion=1e308', arch(row=dict(expansion=1e308)), 'rows[1].expansion', '1e+308'),
    (
        'arch.out_channels=2**40',
        arch(row=dict(out_channels=2**40)),
        'rows[1].out_channels',
        str(2**40),
    ),
    ('arch.kernel=100001', arch(row=dict(kernel=100001)), 'rows[1].kernel', '100001'),
    ('arch.num=10**6', arch(row=dict(num=10**6)), 'rows[1].num', '1000000'),
    ('arch.resolution=10**6', arch(resolution=10**6), 'resolution', '1000000'),
    ('arch.in_channels=2**20', arch(in_channels=2**20), 'in_channels', str(2**20)),
    ('arch.tail=2**40', arch(tail_channels=[2**40]), 'tail_channels', str(2**40)),
    # ---- latency-cache rows
    ('cache.median<0', cache_row(median_ms=-1.0), 'median_ms', '-1.0'),
    ('cache.median=nan', cache_row(median_ms=NAN), 'median_ms', 'nan'),
    ('cache.median=str', cache_row(median_ms='fast'), 'median_ms', "'fast'"),
    ('cache.median missing', cache_row(median_ms=None), 'median_ms', 'None'),
    # ---- predictor JSON files
    ('predictor.truncated', predictor_file('{"coef": [1.0, 2'), 'pred.json', 'not valid JSON'),
    ('predictor.coef str', predictor_file({'coef': [1.0, 'a']}), 'coef[1]', "'a'"),
    ('predictor.coef<0', predictor_file({'coef': [1.0, -2.0]}), 'coef[1]', '-2.0'),
    ('predictor.list', predictor_file([1, 2]), 'pred.json', '[1, 2]'),
    (
        'predictor.channel_block',
        predictor_file({'coef': [1.0], 'channel_block': 0}),
        'channel_block',
        '0',
    ),
    # ---- hub rows
    ('hub.latency=str', hub_row(latency_ms='5'), 'latency_ms', "'5'"),
    ('hub.latency=nan', hub_row(latency_ms=NAN), 'latency_ms', 'nan'),
    ('hub.batch=str', hub_row(batch='1'), 'batch', "'1'"),
    ('hub.input_shape=str', hub_row(input_shape='224'), 'input_shape', "'224'"),
    ('hub.provenance=str', hub_row(provenance='paper'), 'provenance', "'paper'"),
    ('hub.name=int', hub_row(name=123), 'name', '123'),
    ('hub.params=float', hub_row(params=1.5e6), 'params', '1500000.0'),
    # ---- results.json
    (
        'results.metric=str',
        results(_set(['winners', 0, 'metric'], 'high')),
        'winners[0].metric',
        "'high'",
    ),
    (
        'results.latency=nan',
        results(_set(['winners', 0, 'latency_ms'], NAN)),
        'winners[0].latency_ms',
        'nan',
    ),
    ('results.batch=str', results(_set(['search', 'target', 'batch'], '1')), 'target.batch', "'1'"),
    (
        'results.task',
        results(_set(['search', 'task'], 'segmentation')),
        'search.task',
        'segmentation',
    ),
    ('results.mode', results(_set(['search', 'mode'], 'fake')), 'search.mode', "'fake'"),
    ('results.winners=dict', results(_set(['winners'], {})), 'winners', '{}'),
    ('results.no arch', results(_drop(['winners', 0, 'arch'])), 'winners[0].arch', 'missing'),
    # ---- datasets: a zero-byte image, at each door that reads images
    (
        'dataset.zero-byte image (train/test)',
        zero_byte_image('train'),
        'train_dataloader.dataset.ann_file',
        'b.jpg, which is empty (0 bytes)',
    ),
    (
        'dataset.zero-byte image (search)',
        zero_byte_image('search'),
        'train_dataloader.dataset.ann_file',
        'b.jpg, which is empty (0 bytes)',
    ),
    ('image.zero-byte (parity, demo)', zero_byte_image('image'), 'b.jpg', 'empty (0 bytes)'),
]


def _nas_raw(value):
    from gpunet_mm.search.api import nas_settings

    return nas_settings({'nas': value})


def test_the_table_holds_the_issues_52_cases_and_more():
    assert len(CASES) >= 52 + 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize('build, key, shown', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_structure_gets_a_clear_error(tmp_path, build, key, shown):
    from gpunet_mm.deploy.cache import LatencyCacheError

    # SchemaError, HubError, SearchConfigError are ValueErrors; the cache keeps its own type
    with pytest.raises((ValueError, LatencyCacheError)) as e:
        build(tmp_path)
    msg = str(e.value)
    assert key in msg, msg
    assert shown in msg, msg
    assert 'allowed' in msg or 'missing' in msg or 'not valid JSON' in msg, msg


def test_cache_errors_name_the_file_and_are_cache_errors(tmp_path):
    from gpunet_mm.deploy.cache import LatencyCacheError

    with pytest.raises(LatencyCacheError, match=r'latency cache .*cache\.sqlite row .*median_ms'):
        cache_row(median_ms=-1.0)(tmp_path)


def test_errors_list_every_problem_at_once():
    with pytest.raises(SchemaError) as e:
        validate(GPUNetArgs, dict(norm_eval='False', with_cp='no'), 'GPUNet')
    assert len(e.value.problems) == 2


def test_nas_defaults_come_from_the_schema():
    from gpunet_mm.schema import NasSettings, defaults
    from gpunet_mm.search.api import NAS_DEFAULTS, nas_settings

    assert NAS_DEFAULTS == defaults(NasSettings)
    got = nas_settings({'nas': dict(simulate=dict(duration_sigma=0.5), references=('GPUNet-1',))})
    assert got['simulate']['duration_sigma'] == 0.5 and got['simulate']['num_workers'] == 64
    assert got['references'] == ['GPUNet-1'] and got['metric'] == 'coco/bbox_mAP'
