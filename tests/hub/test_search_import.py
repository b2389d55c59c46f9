"""import_search: a NAS run's results.json becomes hub rows with provenance 'search'."""

import json
import os
import shutil

import pytest

from gpunet_mm import hub
from gpunet_mm.hub import HubError, ModelHub
from gpunet_mm.models import GPUNetArch

from .conftest import NAS_RUN


def results():
    with open(os.path.join(NAS_RUN, 'results.json')) as f:
        return json.load(f)


def test_import_winners(hub_file):
    added = hub.import_search(NAS_RUN, device='AMD EPYC 7B13 64-Core Processor', path=hub_file)
    data = results()
    # trial 9 won two budgets: one row, both budgets in its provenance
    assert [e.name for e in added] == ['nas_det_demo-trial3', 'nas_det_demo-trial9']
    e3, e9 = added
    assert e9.provenance.extra['budget_ms'] == [60.0, 70.0]
    assert e3.provenance.kind == 'search'
    assert e3.provenance.trial_id == 3
    assert e3.provenance.journal_hash == data['search']['journal_hash']
    assert e3.provenance.work_dir == data['search']['work_dir']
    # mmdet's fractional mAP is stored as a percentage, like the metafiles
    assert e3.metric == pytest.approx(41.2) and e3.metric_name == 'bbox_mAP'
    assert e3.device == 'cpu-amd-epyc-7b13' and e3.detector == 'retinanet'
    assert e3.input_shape == (320, 320) and e3.latency_ms == 41.5
    w = data['winners'][0]
    assert e3.arch_hash == w['arch_hash'] == GPUNetArch.from_dict(w['arch']).structural_hash()
    assert e3.checkpoint == w['checkpoint'] and e3.config == w['config']
    # persisted, queryable next to the shipped CPU rows ('cpu' matches cpu-amd-epyc-7b13)
    h = ModelHub(hub_file)
    assert h.query('cpu-amd-epyc-7b13', 50.0, task='det').name == 'nas_det_demo-trial3'
    best = h.query('cpu', 80.0, task='det', provenance='search')
    assert best.name == 'nas_det_demo-trial9'


def test_rows_carry_the_machine_and_the_dataset(hub_file):
    (e3, _) = hub.import_search(NAS_RUN, path=hub_file)
    machine = results()['search']['machine']
    # the device comes from the measurements' own device key, not the target's bare 'cpu'
    assert e3.device == 'cpu-amd-epyc-7b13'
    assert e3.machine == dict(
        cpu='AMD EPYC 7B13 64-Core Processor',
        backend='onnxruntime',
        backend_version='1.32.0',
        threads=1,
    )
    assert e3.backend_version == machine['backend_version']
    assert e3.metric_dataset == 'CocoDataset data/coco/annotations/instances_val2017.json'
    assert e3.metric_name == 'bbox_mAP' and not e3.caveats


def test_device_defaults_to_the_target_and_shape_to_the_arch(tmp_path, hub_file):
    run = tmp_path / 'run'
    shutil.copytree(NAS_RUN, run)
    data = results()
    data['search'].pop('machine')  # written before the machine was recorded
    (run / 'results.json').write_text(json.dumps(data))
    (e3, _) = hub.import_search(str(run), path=hub_file)
    assert e3.device == 'cpu'  # what the run's target says; 'cpu' queries fall back to it
    with pytest.warns(hub.OtherDeviceWarning, match='answered from cpu, another machine'):
        got = hub.query(device='cpu', latency_ms=50, task='det', provenance='search', path=hub_file)
    assert got.name == e3.name
    data['search']['target'].pop('shape')
    (run / 'results.json').write_text(json.dumps(data))
    rows = hub.search_entries(str(run), include_pareto=True)
    res = {e.name: e.input_shape for e in rows}
    assert res['nas_det_demo-trial7'] == (384, 384)
    assert res['nas_det_demo-trial3'] == (320, 320)


def test_simulated_runs_need_consent(tmp_path, hub_file):
    run = tmp_path / 'sim'
    shutil.copytree(NAS_RUN, run)
    data = results()
    data['search']['mode'] = 'simulate'
    (run / 'results.json').write_text(json.dumps(data))
    with pytest.raises(HubError, match=r'a --simulate run .*allow_simulated=True'):
        hub.import_search(str(run), path=hub_file)
    rows = hub.import_search(str(run), allow_simulated=True, path=hub_file)
    assert all(e.metric_source == 'search (simulated surrogate)' for e in rows)
    assert all(e.caveats == ['simulated'] for e in rows)


@pytest.mark.parametrize(
    'edit, caveat',
    [
        (lambda s: s.update(mode='simulate', metric_name='surrogate_score'), 'simulated'),
        (lambda s: s.update(toy_data=True, dataset='gpunet_mm demo shapes (toy data)'), 'toy-data'),
        (lambda s: s.pop('dataset'), 'no-dataset'),  # results.json of an older version
    ],
)
def test_demo_and_simulated_rows_never_answer_a_default_query(edit, caveat, tmp_path, hub_file):
    """A search row trained on the demo shapes, scored by a surrogate or on an unnamed
    dataset is in the hub (marked) but answers no query unless asked for."""
    run = tmp_path / 'run'
    shutil.copytree(NAS_RUN, run)
    data = results()
    edit(data['search'])
    for w in data['winners'] + data['trials']:
        w['metric'] = 0.99  # far above every other row: it would win any query it enters
    (run / 'results.json').write_text(json.dumps(data))
    rows = hub.import_search(str(run), allow_simulated=True, path=hub_file)
    assert rows and all(caveat in e.caveats for e in rows)
    h = ModelHub(hub_file, here=dict(cpu='cpu-amd-epyc-7b13', gpu=None))
    names = {e.name for e in rows}
    for device in (None, 'cpu', 'cpu-amd-epyc-7b13'):
        with pytest.raises(HubError, match=r'row\(s\) with caveats are left out \(--include-toy\)'):
            h.query(device, 1000.0, task='det', provenance='search')
        if device != 'cpu-amd-epyc-7b13':  # else nothing is left on that device
            assert h.query(device, 1000.0, task='det', by_backbone_top1=True).name not in names
    assert not names & {e.name for e in h.list_models()}
    assert not names & {e.name for e in h.pareto(by_backbone_top1=True)}
    # asked for: it answers, marked in the table
    got = h.query(None, 1000.0, task='det', include_toy=True)
    assert got.name in names and caveat in got.caveats
    from gpunet_mm.hub.cli import format_table

    table = format_table([got])
    assert caveat.upper() in table.splitlines()[2] and f'{caveat.upper()}: ' in table


def test_import_is_idempotent_and_pareto_adds_front_trials(hub_file):
    hub.import_search(NAS_RUN, path=hub_file)
    hub.import_search(NAS_RUN, path=hub_file)
    assert len(ModelHub(hub_file).user_entries()) == 2
    added = hub.import_search(NAS_RUN, include_pareto=True, path=hub_file)
    names = {e.name for e in ModelHub(hub_file).user_entries()}
    # trial 7 (72.3 ms, 0.47) is on the front but won no budget; 11 is dominated by 3
    assert names == {'nas_det_demo-trial3', 'nas_det_demo-trial9', 'nas_det_demo-trial7'}
    assert {e.name for e in added} == names


def test_search_entry_config_builds(hub_file, tmp_path):
    from gpunet_mm.apis import build_model

    # the winners' best_<budget>ms.py files are not in the fixture (the work_dir "moved"):
    # the config is made from the shipped RetinaNet config and the arch
    hub.import_search(NAS_RUN, path=hub_file)
    out = tmp_path / 'winner.py'
    cfg = hub.get_config('nas_det_demo-trial9', out_file=str(out), path=hub_file)
    arch = GPUNetArch.from_dict(results()['winners'][1]['arch'])
    assert cfg.model.backbone.type == 'GPUNet' and 'tier' not in cfg.model.backbone
    assert GPUNetArch.from_dict(cfg.model.backbone.arch).structural_hash() == arch.structural_hash()
    chans = arch.level_channels()
    assert list(cfg.model.neck.in_channels) == [chans[i] for i in (2, 3, 4)]
    assert cfg.load_from == results()['winners'][1]['checkpoint']
    from mmengine.config import Config

    reread = Config.fromfile(str(out))
    model = build_model(reread.model, 'mmdet')
    assert type(model).__name__ == 'RetinaNet'


@pytest.mark.parametrize(
    'edit, match',
    [
        (lambda d: d.update(format=2), r'results format 2; this version reads 1'),
        (
            lambda d: d['search'].pop('journal_hash'),
            r'results\.json: search\.journal_hash: missing; required',
        ),
        (
            lambda d: d['search']['target'].pop('device'),
            r'results\.json: search\.target\.device: missing; required',
        ),
        (lambda d: d['search'].pop('task'), r'results\.json: search\.task: missing; required'),
        (
            lambda d: d['winners'][0].pop('latency_ms'),
            r'results\.json: winners\[0\]\.latency_ms: missing; required',
        ),
        (
            lambda d: d['winners'][1].update(arch_hash='0000'),
            r"winners\[1\]: arch_hash '0000' does not match",
        ),
    ],
)
def test_bad_results_are_named(edit, match, tmp_path, hub_file):
    run = tmp_path / 'run'
    shutil.copytree(NAS_RUN, run)
    data = results()
    edit(data)
    (run / 'results.json').write_text(json.dumps(data))
    with pytest.raises(HubError, match=match):
        hub.import_search(str(run), path=hub_file)
    assert not os.path.exists(hub_file)


def test_missing_results_file(tmp_path, hub_file):
    with pytest.raises(HubError, match='no results.json in'):
        hub.import_search(str(tmp_path), path=hub_file)


def test_imported_config_path_is_never_executed(hub_file, tmp_path):
    """results.json may name any file as a winner's config; a config is Python: the hub
    makes the config from the arch and the shipped template instead."""

    run = tmp_path / 'run'
    shutil.copytree(NAS_RUN, run)
    marker = tmp_path / 'MARKER_config_ran'
    evil = tmp_path / 'evil_config.py'
    evil.write_text(f'import os\nos.system("touch {marker}")\nmodel = dict()\n')
    data = json.loads((run / 'results.json').read_text())
    for w in data['winners']:
        w['config'] = str(evil)
    (run / 'results.json').write_text(json.dumps(data))
    added = hub.import_search(str(run), path=hub_file)
    cfg = hub.get_config(added[0].name, out_file=str(tmp_path / 'out.py'), path=hub_file)
    assert cfg.model.backbone.type == 'GPUNet' and 'arch' in cfg.model.backbone
    assert not marker.exists()


def test_a_final_retrain_is_the_row_metric_and_the_proxy_is_kept(tmp_path):
    run = tmp_path / 'run'
    shutil.copytree(NAS_RUN, run)
    data = results()
    data['winners'][0].update(final_metric=0.455, metric_kind='proxy')
    (run / 'results.json').write_text(json.dumps(data))
    e3 = next(e for e in hub.search_entries(str(run)) if e.provenance.trial_id == 3)
    assert e3.metric == pytest.approx(45.5)  # the full schedule's, as a percentage
    assert e3.provenance.extra['proxy_metric'] == pytest.approx(41.2)
    assert 'final retrain on the full schedule' in e3.metric_source
