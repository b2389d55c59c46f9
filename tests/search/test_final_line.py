"""The last line of tools/nas_search.py: what was found, against GPUNet-0 from the same run."""

import importlib.util
import os.path as osp

from .conftest import ROOT

_spec = importlib.util.spec_from_file_location(
    'nas_search_cli', osp.join(ROOT, 'tools', 'nas_search.py')
)
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

REF = dict(trial_id=1, arch_hash='aaaa', latency_ms=16.0, metric=0.140, status='complete')


def _summary(best):
    return dict(metric='coco/bbox_mAP', best_per_budget=best, references={'GPUNet-0': REF})


def test_a_searched_winner_is_compared_with_the_reference():
    w = dict(trial_id=4, arch_hash='bbbb', latency_ms=12.0, metric=0.152, origin='optimizer:0')
    line = cli.final_line(_summary({'17.6': w, '10': None}))
    assert line.startswith('FOUND 17.6 ms: bbbb at 12.000 ms, coco/bbox_mAP 0.1520 (trial 4')
    assert '= +0.0120 coco/bbox_mAP at 0.75x the latency of GPUNet-0' in line
    assert '10 ms: nothing trained within budget' in line
    assert line.endswith('| GPUNet-0 in the same run: 16.000 ms, coco/bbox_mAP 0.1400')


def test_the_reference_winning_is_said_plainly():
    w = dict(REF, origin='reference:GPUNet-0')
    line = cli.final_line(_summary({'17.6': w}))
    assert '(trial 1, reference:GPUNet-0) = GPUNet-0 itself: no searched candidate' in line
    assert 'x the latency' not in line


def test_without_references_the_winner_stands_alone():
    w = dict(trial_id=4, arch_hash='bbbb', latency_ms=12.0, metric=0.152, origin='optimizer:0')
    line = cli.final_line(dict(metric='accuracy/top1', best_per_budget={'2': w}))
    assert line == 'FOUND 2 ms: bbbb at 12.000 ms, accuracy/top1 0.1520 (trial 4, optimizer:0)'
