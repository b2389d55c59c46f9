"""The shipped table restates nothing: paper rows come from tiers.py, measured rows agree."""

import os

import pytest

from gpunet_mm.hub.configs import repo_root
from gpunet_mm.hub.shipped import data_files, published_entries, shipped_entries
from gpunet_mm.models import TIERS
from gpunet_mm.models.tiers import PUBLISHED_TARGETS


def test_paper_rows_are_the_tier_meta():
    rows = published_entries()
    assert len(rows) == len(TIERS) * len(PUBLISHED_TARGETS)
    for arch in TIERS:
        mine = [e for e in rows if e.name == arch.name]
        for key, ms in arch.meta['latency_ms'].items():
            t = PUBLISHED_TARGETS[key]
            (e,) = [e for e in mine if (e.device, e.backend) == (t['device'], t['backend'])]
            assert e.latency_ms == ms and e.metric == arch.meta['top1']
            assert e.input_shape == (arch.resolution, arch.resolution)
            assert e.arch_hash == arch.structural_hash()
            assert os.path.isfile(os.path.join(repo_root(), e.config))


def test_every_published_target_is_present():
    # V100 and A100 TensorRT FP16 and A100 PyTorch, as the paper/release report them
    targets = {(e.device, e.backend, e.precision, e.batch) for e in published_entries()}
    assert targets == {
        ('V100', 'tensorrt', 'fp16', 1),
        ('A100', 'tensorrt', 'fp16', 1),
        ('A100', 'torch', 'fp16', 1),
    }


def test_measured_rows_agree_with_tiers_and_configs():
    assert data_files(), 'benchmarks/benchmark_hub.py output is missing'
    measured = [e for e in shipped_entries() if e.provenance.kind == 'measured']
    by_name = {a.name: a for a in TIERS}
    tasks = {(e.task, e.tier) for e in measured}
    for a in TIERS:  # every tier, classifier and RetinaNet
        assert ('classification', a.name) in tasks and ('detection', a.name) in tasks
    for e in measured:
        arch = by_name[e.tier]
        assert e.arch_hash == arch.structural_hash()
        assert os.path.isfile(os.path.join(repo_root(), e.config)), e.config
        env = set(e.provenance.environment)
        if e.provenance.tool == 'benchmarks/benchmark_hub.py':  # this machine's CPU rows
            assert e.device.startswith('cpu-') and e.backend == 'onnxruntime' and e.batch == 1
            assert {'cpu', 'threads', 'onnxruntime', 'torch'} <= env
        else:  # a lent GPU, PyTorch CUDA graphs
            assert e.provenance.tool == 'benchmarks/benchmark_gpu_tiers.py'
            assert e.task == 'classification' and e.backend == 'torch' and e.batch == 1
            assert {'gpu', 'torch', 'cuda'} <= env
        if e.task == 'classification':
            assert e.metric == arch.meta['top1'] and e.params == arch.meta['params']
            assert e.flops == arch.meta['flops']
            assert e.input_shape == (arch.resolution, arch.resolution)
        else:
            assert e.detector in ('retinanet', 'rtmdet', 'yolox') and e.metric is None
            assert e.backbone_top1 == arch.meta['top1']
    # the real-time family next to RetinaNet: demo-sized, GPUNet-0, one run (issue 18)
    demo = {e.name: e for e in measured if e.name.endswith('-GPUNet-0-demo')}
    assert {n: (e.detector, e.input_shape) for n, e in demo.items()} == {
        'RetinaNet-GPUNet-0-demo': ('retinanet', (256, 256)),
        'RTMDet-tiny-GPUNet-0-demo': ('rtmdet', (256, 256)),
        'YOLOX-s-GPUNet-0-demo': ('yolox', (256, 256)),
    }


@pytest.mark.parametrize('tier', range(len(TIERS)))
def test_meta_params_and_flops_are_this_packages_counts(tier):
    from gpunet_mm.complexity import count_flops, count_params
    from gpunet_mm.models.classifiers import build_release_classifier

    arch = TIERS[tier]
    model = build_release_classifier(arch=arch)
    assert count_params(model) == arch.meta['params']
    assert count_flops(model, arch.resolution) == arch.meta['flops']


def test_cpu_query_answers_for_detection():
    from gpunet_mm import hub

    rows = hub.list_models(task='det', device='cpu')
    fastest = min(e.latency_ms for e in rows)
    # no shipped detector has a measured mAP: ranked by the backbone only when asked
    with pytest.raises(hub.HubError, match=r"only their backbone's ImageNet top-1"):
        hub.query(device='cpu', latency_ms=fastest * 1.5, task='det')
    e = hub.query(device='cpu', latency_ms=fastest * 1.5, task='det', by_backbone_top1=True)
    assert e.tier.startswith('GPUNet-') and e.score_basis == 'backbone_top1'
    within = [r for r in rows if r.latency_ms <= fastest * 1.5]
    assert e.backbone_top1 == max(r.backbone_top1 for r in within)
