"""Queries and Pareto fronts on the shipped table, tie-breaks on synthetic user rows."""

import itertools

import pytest

from gpunet_mm import hub
from gpunet_mm.hub import BudgetError, HubEntry, HubError, ModelHub, Provenance
from gpunet_mm.models import TIERS


def published(device, backend='tensorrt'):
    """(name, latency, top1) of the published rows for one target, straight from tiers.py."""
    key = {
        ('V100', 'tensorrt'): 'V100-TRT8-FP16-bs1',
        ('A100', 'tensorrt'): 'A100-TRT8-FP16-bs1',
        ('A100', 'torch'): 'A100-PyTorch-FP16-bs1',
    }[(device, backend)]
    return [(a.name, a.meta['latency_ms'][key], a.meta['top1']) for a in TIERS]


@pytest.mark.parametrize(
    'device, budget, backend, expected',
    [
        ('A100', 1.0, None, 'GPUNet-D1'),  # 82.5 at 0.94 ms
        ('A100', 0.6, None, 'GPUNet-1'),  # 80.5 at 0.59; P1 (81.1) needs 0.61
        ('A100', 1.4, None, 'GPUNet-D2'),  # budget equal to the latency is within it
        ('V100', 0.63, None, 'GPUNet-P0'),  # P0 80.3 and GPUNet-0 78.9 both at 0.63
        ('V100', 1.0, None, 'GPUNet-P1'),
        ('V100', 2.0, None, 'GPUNet-D1'),  # D1 82.5 at 1.24 beats GPUNet-2 82.2 at 1.68
        ('A100', 2.0, 'torch', 'GPUNet-P1'),  # PyTorch rows only: 81.1 at 1.64
        ('A100', 3.5, 'pytorch', 'GPUNet-D2'),
    ],
)
def test_query_published(device, budget, backend, expected, hub_file):
    e = hub.query(device=device, latency_ms=budget, task='cls', backend=backend, path=hub_file)
    assert e.name == expected
    assert e.latency_ms <= budget and e.device == device
    assert e.provenance.kind == 'paper'


def test_query_agrees_with_brute_force_over_many_budgets(hub_file):
    h = ModelHub(hub_file)
    for device, backend in (('V100', 'tensorrt'), ('A100', 'tensorrt'), ('A100', 'torch')):
        rows = published(device, backend)
        for budget in sorted({lat for _, lat, _ in rows} | {0.7, 1.1, 1.5, 2.5, 5.0}):
            within = [r for r in rows if r[1] <= budget]
            if not within:
                continue
            best = max(r[2] for r in within)
            want = min((r for r in within if r[2] == best), key=lambda r: r[1])[0]
            got = h.query(device, budget, task='classification', backend=backend)
            assert got.name == want, (device, backend, budget)


def test_budget_below_fastest_names_it(hub_file):
    with pytest.raises(BudgetError, match=r'below the fastest matching entry: GPUNet-P0 at 0\.45'):
        hub.query(device='A100', latency_ms=0.4, task='cls', path=hub_file)
    with pytest.raises(BudgetError, match=r'GPUNet-P0 at 1\.31'):
        hub.query(device='A100', latency_ms=1.0, backend='torch', path=hub_file)


def test_unknown_device_lists_known(hub_file):
    with pytest.raises(hub.UnknownDeviceError, match=r"got 'T4'; known devices: .*A100, .*V100"):
        hub.query(device='T4', latency_ms=1.0, path=hub_file)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(task='segmentation'), r"task: got 'segmentation'; allowed: .*classification"),
        (dict(backend='openvino'), r"backend: got 'openvino'; known backends: .*tensorrt"),
        (dict(precision='fp8'), r"precision: got 'fp8'; allowed: fp32, fp16"),
        (dict(conditions='top1>>80'), r"unknown operator '>>'; allowed: <= >="),
        (dict(conditions='speed<=1'), r"unknown field 'speed'; allowed: latency_ms"),
    ],
)
def test_bad_filters_name_the_allowed_values(kwargs, match, hub_file):
    with pytest.raises(HubError, match=match):
        hub.query(device='V100', latency_ms=1.0, path=hub_file, **kwargs)


def test_bad_budget(hub_file):
    for bad in (0, -1, 'fast'):
        with pytest.raises(HubError, match='latency budget'):
            hub.query(device='V100', latency_ms=bad, path=hub_file)


def test_conditions_filter_list(hub_file):
    rows = hub.list_models(
        task='cls', device='V100', conditions='latency_ms<=1.0,top1>=80.5', path=hub_file
    )
    assert {e.name for e in rows} == {'GPUNet-1', 'GPUNet-P1'}
    rows = hub.list_models(
        conditions=['params_m<11', 'backend=torch'], device='A100', path=hub_file
    )
    assert [e.name for e in rows] == ['GPUNet-D1']
    # a classifier has no bbox mAP: a condition on it excludes the row
    assert hub.list_models(task='cls', conditions='bbox_mAP>=0', path=hub_file) == []


def _row(name, latency, metric=None, params=None, device='cpu-test-chip', **kw):
    return HubEntry(
        name=name,
        task=kw.pop('task', 'classification'),
        input_shape=(224, 224),
        batch=1,
        device=device,
        backend='onnxruntime',
        precision='fp32',
        latency_ms=latency,
        latency_stat='median',
        metric=metric,
        metric_dataset=None if metric is None else 'a test set',
        params=params,
        provenance=Provenance(
            kind='measured', tool='test', date='2026-01-01', environment={'cpu': 'test chip'}
        ),
        **kw,
    )


def test_tie_breaks_lower_latency_then_fewer_params(hub_file):
    h = ModelHub(hub_file)
    h.add_many(
        [
            _row('slow-small', 9.0, 80.0, params=1_000),
            _row('fast-big', 8.0, 80.0, params=9_000),
            _row('fast-small', 8.0, 80.0, params=5_000),
            _row('less-accurate', 1.0, 79.9, params=10),
        ]
    )
    assert h.query('cpu-test-chip', 10.0).name == 'fast-small'
    assert h.query('cpu-test-chip', 8.5).name == 'fast-small'
    assert h.query('cpu-test-chip', 5.0).name == 'less-accurate'


HERE = dict(cpu='cpu-test-chip', gpu=None)


def test_queries_mean_this_machine_and_say_when_they_answer_from_another(hub_file):
    """No device, or 'cpu': this machine's CPU rows only; none measured here: another CPU's
    row, with a note; a named device: that one, with a note when it is not this machine."""
    h = ModelHub(hub_file, here=HERE)
    h.add_many([_row('mine', 20.0, 70.0), _row('theirs', 20.0, 90.0, device='cpu-other-chip')])
    for device in (None, 'cpu', 'here'):
        ans = h.answer(device, 30.0, task='cls')
        assert ans.entry.name == 'mine' and ans.note is None  # not the better row elsewhere
        assert ans.devices == ['cpu-test-chip']
    ans = h.answer('cpu-other-chip', 30.0)
    assert ans.entry.name == 'theirs'
    assert ans.note == 'measured on cpu-other-chip, not on this machine (cpu-test-chip)'
    # a Xeon with no row of its own gets another CPU's row, and is told so
    xeon = ModelHub(hub_file, here=dict(cpu='cpu-intel-xeon-gold-6338', gpu=None))
    ans = xeon.answer('cpu', 30.0, task='cls', provenance='measured')
    assert ans.entry.device.startswith('cpu-') and ans.entry.device != 'cpu-intel-xeon-gold-6338'
    assert ans.note.startswith('no row was measured on this machine (cpu-intel-xeon-gold-6338)')
    assert f'answered from {ans.entry.device}, another machine' in ans.note
    with pytest.warns(hub.OtherDeviceWarning, match='another machine'):
        xeon.query(None, 30.0, task='cls', provenance='measured')
    with pytest.raises(hub.UnknownDeviceError, match="'gpu': this machine has no visible GPU"):
        h.answer('gpu', 1.0)


def test_remove_drops_user_rows_only(hub_file):
    h = ModelHub(hub_file, here=HERE)
    h.add_many([_row('mine', 20.0, 70.0), _row('mine', 25.0, 70.0, device='cpu-other-chip')])
    gone = h.remove('MINE', device='cpu-other-chip')
    assert [e.device for e in gone] == ['cpu-other-chip']
    assert [e.device for e in h.user_entries()] == ['cpu-test-chip']
    with pytest.raises(HubError, match=r"no row of 'nope' in .*; its rows: mine"):
        h.remove('nope')
    with pytest.raises(HubError, match='only shipped rows match'):
        h.remove('GPUNet-0')
    assert len(h.remove('mine')) == 1 and h.user_entries() == []


def test_task_metric_ranks_above_backbone_proxy(hub_file):
    h = ModelHub(hub_file)
    common = dict(task='detection', detector='retinanet', device='cpu-test-chip')
    h.add_many(
        [
            _row('det-proxy', 10.0, backbone_top1=83.6, **common),
            _row('det-map', 12.0, metric=41.0, **common),
        ]
    )
    assert h.query('cpu-test-chip', 20.0, task='det').name == 'det-map'
    # a detector is ranked by its own metric: the backbone's top-1 answers only when asked
    with pytest.raises(BudgetError, match='det-map at 12'):
        h.query('cpu-test-chip', 11.0, task='det')
    e = h.query('cpu-test-chip', 11.0, task='det', by_backbone_top1=True)
    assert e.name == 'det-proxy' and e.score_basis == 'backbone_top1'


def _dominates(a, b):
    return (
        a.latency_ms <= b.latency_ms
        and a.score >= b.score
        and (a.latency_ms < b.latency_ms or a.score > b.score)
    )


@pytest.mark.parametrize('device, backend', [('V100', 'tensorrt'), ('A100', 'torch')])
def test_pareto_is_exactly_the_non_dominated_set(device, backend, hub_file):
    rows = hub.list_models(device=device, backend=backend, task='cls', path=hub_file)
    front = hub.pareto(device=device, backend=backend, task='cls', path=hub_file)
    names = {e.name for e in front}
    for a, b in itertools.permutations(front, 2):
        assert not _dominates(a, b)
    for e in rows:
        if e.name not in names:
            assert any(_dominates(f, e) for f in front), e.name
    assert [e.latency_ms for e in front] == sorted(e.latency_ms for e in front)


def test_pareto_v100_published_front(hub_file):
    names = [e.name for e in hub.pareto(device='V100', task='cls', path=hub_file)]
    # GPUNet-0 ties P0's latency with lower top-1; GPUNet-2 is slower and worse than D1
    assert names == ['GPUNet-P0', 'GPUNet-1', 'GPUNet-P1', 'GPUNet-D1', 'GPUNet-D2']


def test_pareto_keeps_targets_apart(hub_file):
    front = hub.pareto(device='A100', task='cls', path=hub_file)
    by_backend = {b: [e.name for e in front if e.backend == b] for b in ('tensorrt', 'torch')}
    # on PyTorch, GPUNet-1 (1.81 ms) is dominated by P1 (1.64 ms, 81.1); on TensorRT it is not
    assert 'GPUNet-1' in by_backend['tensorrt'] and 'GPUNet-1' not in by_backend['torch']
    assert len(front) == len(by_backend['tensorrt']) + len(by_backend['torch'])
