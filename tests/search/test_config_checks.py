"""What a search checks before it trains: overrides that change nothing, empty detections."""

import os.path as osp

import pytest

from gpunet_mm.search.api import load_search_config
from gpunet_mm.search.trainer import SearchConfigError, empty_detection_metric

from .conftest import ROOT

DEMO_SEARCH = osp.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py')


def test_an_override_of_an_expanded_variable_is_refused_naming_the_key():
    """``max_epochs=1`` would change the variable the file already wrote into train_cfg."""
    with pytest.raises(SearchConfigError, match=r'max_epochs=1.*train_cfg\.max_epochs=1'):
        load_search_config(DEMO_SEARCH, {'max_epochs': 1})
    cfg = load_search_config(DEMO_SEARCH, {'train_cfg.max_epochs': 1})
    assert cfg['train_cfg']['max_epochs'] == 1
    # an unchanged value or a variable nothing else uses is no mistake
    same = load_search_config(DEMO_SEARCH, {'max_epochs': cfg['max_epochs']})
    assert same['train_cfg']['max_epochs'] == cfg['max_epochs']
    assert load_search_config(DEMO_SEARCH, {'my_note': 'x'})['my_note'] == 'x'


def test_empty_coco_result_is_a_zero_with_a_warning():
    cfg = dict(nas=dict(), model=dict(test_cfg=dict(score_thr=0.05)))
    # mmdet's CocoMetric on no detections: no coco/* key at all
    out = empty_detection_metric(cfg, {})
    assert out['coco/bbox_mAP'] == 0.0
    assert 'score_thr=0.05' in out['warning'] and 'counted as 0' in out['warning']
    assert empty_detection_metric(cfg, {'coco/bbox_mAP': 0.3}) == {}
    # other coco keys but not the asked one: a wrong nas.metric, left for the controller
    assert empty_detection_metric(cfg, {'coco/segm_mAP': 0.1}) == {}
    cls = dict(nas=dict(), default_scope='mmpretrain')
    assert empty_detection_metric(cls, {}) == {}


def test_the_full_fidelity_demo_spends_the_demos_compute_without_rungs():
    """benchmark_demo_fidelity.py compares the two at equal compute: the full-fidelity demo
    trains num_trials x the proxy schedule, what `make demo` may spend on its rungs, and
    both end with the same final retrain."""
    from gpunet_mm.search.api import nas_settings

    demo = load_search_config(DEMO_SEARCH)
    full = load_search_config(DEMO_SEARCH.replace('_demo_ort-cpu', '_demo_full_ort-cpu'))
    d, f = nas_settings(demo), nas_settings(full)
    assert d['fidelity'] is not None and f['fidelity'] is None and f['compute_budget'] is None
    assert f['num_trials'] * full['train_cfg']['max_epochs'] == d['compute_budget']
    assert f['final'] == d['final'] and f['budgets'] == d['budgets']
    # everything else (data, detector, schedule, latency target) is the demo's
    for key in ('model', 'train_cfg', 'param_scheduler', 'latency_target', 'search_space'):
        assert full[key] == demo[key], key


def test_the_inheritance_demo_is_the_demo_with_inheritance_only():
    """benchmark_demo_fidelity.py's `inherit` mode: the demo's rungs, compute and final
    retrain, new candidates inheriting from the closest top-rung parent."""
    from gpunet_mm.search.api import nas_settings

    demo = load_search_config(DEMO_SEARCH)
    inh = load_search_config(DEMO_SEARCH.replace('_demo_ort-cpu', '_demo_inherit_ort-cpu'))
    d, i = nas_settings(demo), nas_settings(inh)
    assert d['inherit'] is None and i['inherit'] == dict(parent_rung=-1, min_fraction=0.0)
    assert {k: v for k, v in i.items() if k != 'inherit'} == {
        k: v for k, v in d.items() if k != 'inherit'
    }
    for key in ('model', 'train_cfg', 'param_scheduler', 'latency_target', 'search_space'):
        assert inh[key] == demo[key], key
