"""The worker side of multi-fidelity: a rung continues from the previous rung's checkpoint
(mmengine resume: the iteration count and the LR go on, nothing restarts), the final
retrain trains the base config's full schedule, and schedules that cannot be continued are
refused before anything trains."""

import copy
import os.path as osp

import pytest

from gpunet_mm.search.continuation import (
    base_schedule,
    final_config,
    rank_agreement,
    rescaled_schedule,
    rung_config,
    schedule_epochs,
)
from gpunet_mm.search.trainer import SearchConfigError, candidate_config

from .conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'nas', 'retinanet_gpunet-nas_fpn_demo_ort-cpu.py')


@pytest.fixture(scope='module')
def search_cfg():
    from gpunet_mm.search.api import load_search_config

    return load_search_config(CONFIG)


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory, search_cfg):
    """The demo search config on 16 tiny images, 3 epochs of 2 iterations each, with a
    warm-up and a cosine that ends at epoch 3 (so the LR moves every iteration)."""
    from gpunet_mm.datasets import generate_detection_demo

    root = str(tmp_path_factory.mktemp('data') / 'demo_det') + '/'
    generate_detection_demo(root, num_train=16, num_val=4, image_size=64, seed=3)
    cfg = copy.deepcopy(search_cfg)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key]['dataset']['data_root'] = root
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key]['ann_file'] = root + 'annotations/instances_val.json'
    cfg['search_space']['resolutions'] = [64]
    cfg['train_cfg'] = dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=3)
    cfg['param_scheduler'] = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
        dict(type='CosineAnnealingLR', begin=0, end=3, by_epoch=True, eta_min=1e-5),
    ]
    cfg['default_hooks']['logger'] = dict(type='LoggerHook', interval=1)
    return cfg


def _lr_log():
    """A hook recording (global iteration, LR) of every training iteration."""
    from mmengine.hooks import Hook

    class LRLog(Hook):
        def __init__(self):
            self.seen = []

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            lr = runner.optim_wrapper.get_lr()['lr'][0]
            self.seen.append((runner.iter, round(float(lr), 10)))

    return LRLog()


def _arch(cfg):
    from gpunet_mm.nas import build_space
    from gpunet_mm.search.api import reference_arch

    return reference_arch('GPUNet-0', build_space(cfg['search_space']))


def test_a_promoted_rung_continues_the_iterations_and_the_lr(tiny_cfg, tmp_path):
    from gpunet_mm.search.trainer import train_candidate

    arch = _arch(tiny_cfg)
    whole = _lr_log()
    ref = train_candidate(tiny_cfg, arch, str(tmp_path / 'whole'), threads=1, extra_hooks=[whole])
    assert ref['epochs'] == 3 and ref['epochs_trained'] == 3
    first, second = _lr_log(), _lr_log()
    r1 = train_candidate(
        tiny_cfg, arch, str(tmp_path / 'rung1'), threads=1, epochs=1, extra_hooks=[first]
    )
    assert (r1['epochs'], r1['epochs_trained']) == (1, 1)
    assert osp.isabs(r1['checkpoint']) and osp.isfile(r1['checkpoint'])
    assert 'coco/bbox_mAP' in r1  # a rung ends with a validation
    if r1.get('no_detections'):  # nothing above the score threshold yet: mAP 0, not an error
        assert r1['coco/bbox_mAP'] == 0.0
    r2 = train_candidate(
        tiny_cfg,
        arch,
        str(tmp_path / 'rung2'),
        threads=1,
        epochs=3,
        resume_from=r1['checkpoint'],
        extra_hooks=[second],
    )
    assert (r2['epochs'], r2['epochs_trained']) == (3, 2)
    per_epoch = len(first.seen)
    assert per_epoch == 2 and len(second.seen) == 2 * per_epoch
    # the iteration count goes on from the checkpoint, the LR is the uninterrupted run's
    # (warm-up finished, the cosine where epoch 1 left it), not a restarted schedule
    assert second.seen[0][0] == first.seen[-1][0] + 1
    assert first.seen + second.seen == whole.seen
    assert second.seen[0][1] != first.seen[0][1]
    # the previous rung's checkpoint is still there for a retried promotion
    assert osp.isfile(r1['checkpoint']) and r2['checkpoint'] != r1['checkpoint']


def test_the_final_retrain_trains_the_full_schedule_from_scratch(tiny_cfg, tmp_path):
    from gpunet_mm.search.trainer import train_candidate

    arch = _arch(tiny_cfg)
    schedule = dict(train_cfg=dict(max_epochs=2, val_interval=2))
    r = train_candidate(
        tiny_cfg, arch, str(tmp_path / 'final'), threads=1, final=True, final_schedule=schedule
    )
    assert (r['epochs'], r['epochs_trained']) == (2, 2)
    assert osp.isfile(r['checkpoint']) and 0.0 <= r['coco/bbox_mAP'] <= 1.0


def test_the_base_configs_own_schedule_is_the_full_one(search_cfg):
    sched = base_schedule(CONFIG)
    assert search_cfg['train_cfg']['max_epochs'] == 8  # the search's proxy override
    assert sched['train_cfg']['max_epochs'] == 12  # configs/demo/retinanet_gpunet-0_fpn_demo
    cosine = [s for s in sched['param_scheduler'] if s['type'] == 'CosineAnnealingLR']
    assert cosine[0]['end'] == 12
    ccfg = final_config(candidate_config(search_cfg, _arch(search_cfg)), sched)
    assert ccfg['train_cfg']['max_epochs'] == 12 and ccfg['resume'] is False
    assert ccfg['default_hooks']['checkpoint']['save_last'] is True
    with pytest.raises(SearchConfigError, match='nas.final.schedule: unknown key'):
        final_config(candidate_config(search_cfg, _arch(search_cfg)), dict(max_epoch=3))


def test_a_rung_is_a_prefix_of_the_full_schedule(search_cfg):
    ccfg = rung_config(candidate_config(search_cfg, _arch(search_cfg)), 3, None)
    assert ccfg['train_cfg']['max_epochs'] == 3 and ccfg['train_cfg']['val_interval'] == 3
    assert ccfg['param_scheduler'] == search_cfg['param_scheduler']  # still ends at 8
    assert ccfg['default_hooks']['checkpoint']['save_last'] is True
    squeezed = rescaled_schedule(search_cfg, 2)
    assert [s['end'] for s in squeezed['param_scheduler']] == [30, 2]  # iterations kept
    with pytest.raises(ValueError, match=r'epochs: got 9; allowed: an integer in 1\.\.8'):
        rung_config(candidate_config(search_cfg, _arch(search_cfg)), 9, None)
    with pytest.raises(FileNotFoundError, match='resume_from'):
        rung_config(candidate_config(search_cfg, _arch(search_cfg)), 3, 'relative.pth')


@pytest.mark.parametrize(
    'change, match',
    [
        (dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=100)), 'iteration based'),
        (dict(train_cfg=dict(by_epoch=False, max_iters=100)), 'iteration based'),
        (dict(default_hooks=dict(checkpoint=None)), 'disables checkpoints'),
        (dict(train_cfg=dict(max_epochs=0)), r'max_epochs: .* has 0'),
    ],
)
def test_schedules_that_cannot_be_continued_are_refused(search_cfg, change, match):
    from gpunet_mm.search.fidelity import check_settings

    cfg = dict(copy.deepcopy(search_cfg), **change)
    with pytest.raises(SearchConfigError, match=match):
        schedule_epochs(cfg)
    # the search's own check is the same one, before anything trains
    with pytest.raises(SearchConfigError, match=match):
        check_settings(cfg, dict(fidelity=dict(min_epochs=1)), simulate=False)


@pytest.mark.parametrize('min_epochs', [0, 9, 2.5, True])
def test_min_epochs_within_the_schedule(search_cfg, min_epochs):
    from gpunet_mm.search.fidelity import check_settings

    with pytest.raises(SearchConfigError, match='nas.fidelity.min_epochs: got'):
        check_settings(search_cfg, dict(fidelity=dict(min_epochs=min_epochs)), simulate=False)


def test_rungs_cannot_end_past_the_schedule_the_candidates_train(search_cfg):
    from gpunet_mm.search.fidelity import check_settings

    nas = dict(fidelity=dict(min_epochs=1, max_epochs=9))  # the demo search trains 8
    with pytest.raises(SearchConfigError, match=r'max_epochs: got 9, above .*max_epochs=8\)'):
        check_settings(search_cfg, nas, simulate=False)
    check_settings(search_cfg, dict(fidelity=dict(min_epochs=1, max_epochs=6)), simulate=False)


def test_full_schedule_and_rank_agreement():
    assert schedule_epochs({'train_cfg': dict(max_epochs=8)}) == 8
    full = dict(a=0.5, b=0.4, c=0.3, d=0.2)
    same = rank_agreement(dict(a=0.1, b=0.08, c=0.05, d=0.01), full, top_k=2)
    assert same['kendall_tau'] == pytest.approx(1.0) and same['top_k_overlap'] == 1.0
    flipped = rank_agreement(dict(a=0.01, b=0.05, c=0.08, d=0.1), full, top_k=2)
    assert flipped['kendall_tau'] == pytest.approx(-1.0) and flipped['top_k_overlap'] == 0.0


def test_an_arch_read_from_a_config_saves_plain_meta(tmp_path):
    """Candidates get ``arch=`` through an mmengine Config: the checkpoint meta built from it
    must hold no ConfigDict, or the next rung could not load it weights-only."""
    import torch
    from mmengine.config import Config

    from gpunet_mm.models.arch_spec import GPUNetArch
    from gpunet_mm.models.tiers import get_tier

    a = GPUNetArch.from_dict(Config(dict(arch=get_tier('GPUNet-0').to_dict())).arch)
    path = str(tmp_path / 'meta.pth')
    torch.save(dict(meta=a.to_dict()), path)
    assert torch.load(path, weights_only=True)['meta'] == get_tier('GPUNet-0').to_dict()
