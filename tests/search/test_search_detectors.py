"""The search on the real-time detectors: RTMDet end to end (2 trials), and a detector
the exporter has no path for failing before anything trains."""

import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from ..subprocess_check import check_ok
from .conftest import ROOT
from .test_search_e2e import _options

RTMDET = osp.join(ROOT, 'configs', 'nas', 'rtmdet_gpunet-nas_demo_ort-cpu.py')


@pytest.mark.slow
def test_rtmdet_search_two_trials_end_to_end(tmp_path):
    pytest.importorskip('ray')
    from gpunet_mm.datasets import generate_detection_demo

    data = str(tmp_path / 'demo_det')
    generate_detection_demo(data, num_train=16, num_val=8, image_size=128)
    data += '/'
    wd = str(tmp_path / 'search')
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'nas_search.py'),
        RTMDET,
        '--work-dir', wd,
        '--trials', '2',
        '--workers', '2',
        '--budgets', '2.0*GPUNet-0',
        '--no-progress',
        '--hub-file', str(tmp_path / 'hub.jsonl'),
        *_options(data),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    check_ok(out)
    summary = json.loads(open(osp.join(wd, 'summary.json')).read())
    assert summary['trials_by_status']['complete'] == 2, summary
    results = json.loads(open(osp.join(wd, 'results.json')).read())
    for trial in results['trials']:
        assert trial['latency_ms'] > 0
    (winner,) = results['winners']
    # the winner's config is RTMDet with its neck wired to the winner's level channels
    from mmengine.config import Config

    from gpunet_mm.models.arch_spec import GPUNetArch

    cfg = Config.fromfile(winner['config'])
    assert cfg.model.type == 'RTMDet' and cfg.model.neck.type == 'CSPNeXtPAFPN'
    chans = GPUNetArch.from_dict(winner['arch']).level_channels()
    assert list(cfg.model.neck.in_channels) == [chans[i] for i in cfg.model.backbone.out_indices]


def test_search_refuses_a_detector_without_export_path_before_training(tmp_path):
    """Cascade R-CNN in a search config: the exporter's clear error, from the config alone."""
    from gpunet_mm.search.api import load_search_config, validate_config
    from gpunet_mm.search.trainer import SearchConfigError

    cfg = load_search_config(RTMDET)
    cfg['model'] = dict(
        type='CascadeRCNN',
        backbone=dict(type='GPUNet', tier=0, out_indices=(1, 2, 3, 4)),
        rpn_head=dict(type='RPNHead'),
        roi_head=dict(type='CascadeRoIHead'),
    )
    with pytest.raises(SearchConfigError, match=r'detector CascadeRCNN is not supported.*RTMDet'):
        validate_config(cfg)
    cfg['model'] = dict(load_search_config(RTMDET)['model'], bbox_head=dict(type='PAAHead'))
    with pytest.raises(SearchConfigError, match=r'model.bbox_head \(PAAHead\)'):
        validate_config(cfg)
