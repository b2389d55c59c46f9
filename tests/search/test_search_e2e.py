"""The real thing, tiny: Ray workers train RetinaNet candidates with mmengine on generated
data, the whole exported detector is timed with ONNX Runtime, reports are written, and the
winner's config trains as it is."""

import csv
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from ..subprocess_check import check_ok
from .conftest import ROOT

pytest.importorskip('ray')
CONFIG = osp.join(ROOT, 'configs', 'nas', 'retinanet_gpunet-nas_fpn_demo_ort-cpu.py')


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from gpunet_mm.datasets import generate_detection_demo

    root = str(tmp_path_factory.mktemp('data') / 'demo_det')
    generate_detection_demo(root, num_train=16, num_val=8, image_size=128)
    return root + '/'


def _options(data_root, extra=()):
    opts = [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'val_evaluator.ann_file={data_root}annotations/instances_val.json',
        f'test_evaluator.ann_file={data_root}annotations/instances_val.json',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'param_scheduler=[]',
        'nas.calibration_samples=0',
        'latency_target.iters=3',
        'latency_target.warmup=1',
        'search_space.resolutions=[64]',
        # one epoch: no rungs, no compute budget, no final retrain (the demo's own settings
        # are exercised by the multi-fidelity end-to-end test)
        'nas.fidelity=None',
        'nas.compute_budget=None',
        'nas.final=None',
        *extra,
    ]
    return ['--cfg-options', *opts]


def test_demo_search_end_to_end(tiny_data, tmp_path):
    wd = str(tmp_path / 'search')
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'nas_search.py'),
        CONFIG,
        '--work-dir',
        wd,
        '--trials',
        '3',
        '--workers',
        '2',
        '--budgets',
        '2.0*GPUNet-0',
        '--no-progress',
        '--hub-file',
        str(tmp_path / 'hub.jsonl'),
        *_options(tiny_data),
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    check_ok(out)
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith('FOUND ') and 'GPUNet-0 in the same run' in last
    summary = json.loads(open(osp.join(wd, 'summary.json')).read())
    csv = open(osp.join(wd, 'trials.csv')).read()
    assert summary['trials_by_status']['complete'] == 3, (summary, csv, out.stdout[-3000:])
    results = json.loads(open(osp.join(wd, 'results.json')).read())
    (winner,) = results['winners']
    assert winner['latency_ms'] <= results['search']['budgets_ms'][0]
    assert results['references'][0]['name'] == 'GPUNet-0'
    # one CSV row per trial (a proposal measured over the budget too); results.json lists
    # the trained ones
    rows = open(osp.join(wd, 'trials.csv')).read().splitlines()
    assert len(rows) == 1 + sum(summary['trials_by_status'].values())
    assert len(results['trials']) == summary['trials_by_status']['complete']
    assert osp.getsize(osp.join(wd, 'pareto.png')) > 10_000
    # each candidate's own mmengine work_dir, with a checkpoint
    assert osp.isfile(winner['checkpoint'])
    # the winner went into the model hub, with where it comes from
    from gpunet_mm.hub import list_models

    (row,) = [
        e
        for e in list_models(path=str(tmp_path / 'hub.jsonl'), include_toy=True)
        if e.provenance.kind == 'search'
    ]
    assert row.arch_hash == winner['arch_hash'] and row.latency_ms == winner['latency_ms']
    # trained on the demo shapes: marked as toy data, kept out of default answers; the
    # machine is the one the latencies were measured on
    assert results['search']['toy_data'] is True and row.caveats == ['toy-data']
    assert not list_models(path=str(tmp_path / 'hub.jsonl'), provenance='search')
    assert results['search']['machine']['device'].startswith('cpu:')
    assert row.device.startswith('cpu-') and row.backend_version
    assert set(winner['neighbours']) == {'tolerance', 'fastest_near_best', 'next_faster'}
    assert 'TOY DATA' in out.stdout and not out.stdout.lstrip().startswith('{')
    # the winner's config is a plain config: it loads and builds the searched detector
    from mmengine.config import Config

    from gpunet_mm.apis import build_model

    cfg = Config.fromfile(winner['config'])
    assert 'nas' not in cfg and cfg.model.backbone.arch == winner['arch']
    model = build_model(cfg.model, 'mmdet')
    assert sum(p.numel() for p in model.parameters()) == winner['params']
    # resuming a finished search re-trains nothing and rewrites the same winner
    out2 = subprocess.run(
        cmd + ['--resume'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    check_ok(out2)
    assert out2.stdout.strip().splitlines()[-1] == last


@pytest.mark.slow  # about 2 minutes on 2 cores: 10 trainings, 8 detectors timed
def test_demo_search_with_promotions_end_to_end(tiny_data, tmp_path):
    """`make demo`'s own multi-fidelity settings (rungs, compute budget, final retrain of the
    top 2), shrunk: rungs of 1 and 2 epochs (eta 2, so that promotions start after two
    results), 8 epochs of compute, the final retrain on the 2-epoch proxy schedule in one go
    (the demo's "full" schedule is its proxy's too, given as nas.final.schedule)."""
    wd = str(tmp_path / 'search')
    opts = [o for o in _options(tiny_data)[1:] if not o.startswith(('nas.', 'train_cfg.'))]
    opts += [
        'train_cfg.max_epochs=2',
        'train_cfg.val_interval=2',
        'nas.fidelity.eta=2',
        'nas.compute_budget=8',
        'nas.calibration_samples=0',
        'nas.final.schedule.train_cfg.max_epochs=2',
        'nas.final.schedule.train_cfg.val_interval=2',
        'nas.final.schedule.param_scheduler=[]',
    ]
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'nas_search.py'), CONFIG, '--work-dir', wd]
    cmd += ['--workers', '2', '--budgets', '2.0*GPUNet-0', '--no-progress', '--no-hub']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(
        cmd + ['--cfg-options', *opts],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    check_ok(out)
    summary = json.loads(open(osp.join(wd, 'summary.json')).read())
    results = json.loads(open(osp.join(wd, 'results.json')).read())
    fid = summary['fidelity']
    assert fid['rung_epochs'] == [1, 2] and fid['eta'] == 2
    # bounded by compute: the rungs never spend more than the budget, and the budget, not
    # the trial count, stopped the search
    assert 0 < summary['compute_epochs'] <= 8 and summary['compute_budget'] == 8
    assert summary['trials_by_status'].get('complete', 0) < 20
    # promotions happened: a searched candidate (not only GPUNet-0, which climbs every
    # rung) continued to the full proxy schedule, and more candidates were tried than
    # reached it
    top = fid['rung_occupancy']
    with open(osp.join(wd, 'trials.csv')) as f:
        rows = list(csv.DictReader(f))
    promoted = [r for r in rows if r['epochs'] == '2' and r['origin'].startswith('optimizer')]
    assert promoted and all(r['metric_1ep'] and r['metric_2ep'] for r in promoted), rows
    assert fid['promotions'] >= 2 and len(results['trials']) > top[-1], fid
    # the top 2 retrained from scratch on the "full" schedule, reported next to their proxy
    runs = summary['final']['runs']
    assert len(runs) == 2 and all(r['status'] == 'complete' for r in runs), runs
    assert all(r['final_epochs'] == 2 and 0.0 <= r['final_metric'] <= 1.0 for r in runs)
    assert all(r['proxy_epochs'] in (1, 2) for r in runs)
    (winner,) = results['winners']
    assert winner['metric_kind'] == 'proxy' and 'final_metric' in winner
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith('FOUND ') and ' | FINAL ' in last and 'on the full schedule' in last


def test_bad_inputs_fail_before_training(tiny_data, tmp_path):
    tool = osp.join(ROOT, 'tools', 'nas_search.py')

    def run(*args):
        return subprocess.run(
            [sys.executable, tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
        )

    r = run(
        CONFIG,
        '--work-dir',
        str(tmp_path / 'a'),
        *_options(tiny_data, ['latency_target.backend=openvino']),
    )
    assert r.returncode != 0 and "got 'openvino'" in r.stderr and 'onnxruntime' in r.stderr
    r = run(
        CONFIG,
        '--work-dir',
        str(tmp_path / 'b'),
        *_options(tiny_data, ['model.backbone.type=ResNet']),
    )
    assert r.returncode != 0 and 'GPUNet backbone' in r.stderr
    # --simulate runs the same checks: a ResNet detector is no GPUNet search
    r = run(
        CONFIG,
        '--work-dir',
        str(tmp_path / 'b2'),
        '--simulate',
        *_options(tiny_data, ['model.backbone.type=ResNet']),
    )
    assert r.returncode != 0 and 'GPUNet backbone' in r.stderr
    # an override of a variable the config already expanded is refused, naming the key
    r = run(CONFIG, '--work-dir', str(tmp_path / 'b3'), '--cfg-options', 'max_epochs=1')
    assert r.returncode != 0 and 'train_cfg.max_epochs=1' in r.stderr
    r = run(CONFIG, '--work-dir', str(tmp_path / 'c'), *_options('/nonexistent/demo_det/'))
    assert r.returncode != 0 and 'make_demo_data.py' in r.stderr
    r = run(CONFIG, '--work-dir', str(tmp_path / 'd'), '--budgets', '0.001', *_options(tiny_data))
    assert r.returncode != 0 and 'below the fastest architecture' in r.stderr
    assert not osp.exists(tmp_path / 'd' / 'trials')  # nothing was trained
    assert 'Traceback' not in r.stderr


def test_classification_search_end_to_end(tmp_path):
    """The same machinery on an mmpretrain classifier (metric accuracy/top1)."""
    from gpunet_mm.datasets import generate_classification_demo

    root = str(tmp_path / 'demo_cls')
    generate_classification_demo(root, per_class_train=4, per_class_val=2, image_size=64)
    config = osp.join(ROOT, 'configs', 'nas', 'gpunet-nas_demo-cls_ort-cpu.py')
    wd = str(tmp_path / 'search')
    opts = [
        f'{k}.dataset.data_root={root}'
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    opts += [
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'param_scheduler=[]',
        'nas.calibration_samples=0',
        'latency_target.iters=3',
        'latency_target.warmup=1',
    ]
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'nas_search.py'),
        config,
        '--work-dir',
        wd,
        '--trials',
        '2',
        '--workers',
        '2',
        '--budgets',
        '3*GPUNet-0',
        '--no-progress',
        '--no-hub',
        '--cfg-options',
        *opts,
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    check_ok(out)
    results = json.loads(open(osp.join(wd, 'results.json')).read())
    assert results['search']['task'] == 'classification'
    assert results['search']['metric_name'] == 'accuracy/top1'
    assert len(results['trials']) == 2
    assert all(0 <= t['metric'] <= 100 for t in results['trials'])
    from mmengine.config import Config

    from gpunet_mm.apis import build_model

    (w,) = results['winners']
    build_model(Config.fromfile(w['config']).model, 'mmpretrain')


def test_a_trial_on_two_processes(tiny_data, tmp_path):
    """nas.nproc_per_trial=2: the worker runs the trial with torchrun (gloo on a CPU)."""
    import argparse

    from mmengine.config import DictAction

    from gpunet_mm.nas import build_space
    from gpunet_mm.search.api import load_search_config, reference_arch
    from gpunet_mm.search.worker import run_trial

    p = argparse.ArgumentParser()
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    opts = p.parse_args(_options(tiny_data)).cfg_options
    cfg = load_search_config(CONFIG, opts)
    arch = reference_arch('GPUNet-0', build_space(cfg['search_space']))
    task = dict(
        trial_id=3, attempt=1, arch=arch, cfg=cfg, work_dir=str(tmp_path), threads=1, nproc=2
    )
    result = run_trial(task)
    assert result['world_size'] == 2
    assert 0.0 <= result['coco/bbox_mAP'] <= 1.0
    assert osp.isfile(result['checkpoint'])
