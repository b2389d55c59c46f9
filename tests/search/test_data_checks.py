"""The data a search trains and validates on is checked by one function, before the
journal exists and again in every worker before it trains."""

from __future__ import annotations

import json
import os.path as osp

import pytest

from gpunet_mm.apis import MissingDatasetError, check_dataset_files
from gpunet_mm.search.api import check_data
from gpunet_mm.search.executor import systemic_cause
from gpunet_mm.search.trainer import SearchConfigError

from .conftest import ROOT


def _coco(root):
    """A one-image COCO set under ``root``: ``ann.json`` and ``img/a.jpg``."""
    (root / 'img').mkdir(parents=True)
    (root / 'img' / 'a.jpg').write_bytes(b'\xff\xd8 not empty')
    ann = dict(
        images=[dict(id=1, file_name='a.jpg', width=8, height=8)],
        annotations=[],
        categories=[dict(id=1, name='x')],
    )
    (root / 'ann.json').write_text(json.dumps(ann))
    return dict(
        type='CocoDataset', data_root=str(root), ann_file='ann.json', data_prefix=dict(img='img/')
    )


def _cfg(train, val=None, evaluator=None):
    cfg = dict(train_dataloader=dict(dataset=train))
    if val is not None:
        cfg['val_dataloader'] = dict(dataset=val)
    if evaluator is not None:
        cfg['val_evaluator'] = evaluator
    return cfg


@pytest.mark.parametrize(
    'build, key',
    [
        # a wrapper: the old search check looked for ann_file on the wrapper and passed
        (
            lambda ok, gone: _cfg(dict(type='RepeatDataset', times=2, dataset=gone), ok),
            'train_dataloader.dataset.dataset.ann_file',
        ),
        (
            lambda ok, gone: _cfg(dict(type='ConcatDataset', datasets=[ok, gone]), ok),
            'train_dataloader.dataset.datasets.1.ann_file',
        ),
        # the evaluator reads its own copy of the annotations (CocoMetric)
        (
            lambda ok, gone: _cfg(
                ok, ok, dict(type='CocoMetric', ann_file=osp.join(gone['data_root'], 'ann.json'))
            ),
            'val_evaluator.ann_file',
        ),
        (lambda ok, gone: _cfg(ok, gone), 'val_dataloader.dataset.ann_file'),
    ],
)
def test_missing_data_is_named_by_its_key_wherever_it_is_nested(tmp_path, build, key):
    ok = _coco(tmp_path / 'ok')
    gone = dict(ok, data_root=str(tmp_path / 'gone'))
    cfg = build(ok, gone)
    with pytest.raises(SearchConfigError, match=rf'^{key}: .*gone.* does not exist'):
        check_data(cfg)
    with pytest.raises(MissingDatasetError, match=rf'^{key}: '):
        check_dataset_files(cfg, ('train', 'val'))


def test_a_relative_path_resolves_as_mmengine_resolves_it(tmp_path, monkeypatch):
    """``ann_file`` is joined to ``data_root`` (mmengine), never looked up in the working
    directory first: the old search check passed a file found there, which the trainings
    never read."""
    ok = _coco(tmp_path / 'ok')
    monkeypatch.chdir(tmp_path / 'ok')  # ann.json is here, relative to the cwd
    cfg = _cfg(dict(ok, data_root='elsewhere/'))
    with pytest.raises(SearchConfigError, match=rf'elsewhere/ann.json \(relative to {tmp_path}'):
        check_data(cfg)
    check_data(_cfg(dict(ok, data_root='')))  # relative to the cwd, as mmengine reads it


def test_the_worker_checks_before_it_trains_and_the_controller_stops_on_it(tmp_path):
    from gpunet_mm.search.worker import run_trial

    gone = dict(data_root=str(tmp_path / 'demo_det'), ann_file='annotations/a.json')
    task = dict(cfg=_cfg(gone), work_dir=str(tmp_path / 'search'), trial_id=3, attempt=1, arch={})
    with pytest.raises(MissingDatasetError) as info:
        run_trial(task)
    assert not osp.exists(tmp_path / 'search')  # nothing was started
    assert 'make_demo_data.py' in systemic_cause(info.value)


def test_search_without_its_data_stops_before_the_journal_exists(tmp_path):
    """The demo search in a checkout without ``make_demo_data.py``, its training set
    wrapped (RepeatDataset): a named error, no work_dir, nothing trained or measured."""
    from gpunet_mm.search.api import load_search_config, run_search

    cfg = load_search_config(osp.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py'))
    inner = dict(cfg['train_dataloader']['dataset'], data_root=str(tmp_path / 'data/demo_det/'))
    cfg['train_dataloader']['dataset'] = dict(type='RepeatDataset', times=2, dataset=inner)
    with pytest.raises(SearchConfigError, match='dataset.dataset.ann_file: .*make_demo_data.py'):
        run_search(cfg, str(tmp_path / 'wd'))
    assert not osp.exists(tmp_path / 'wd')
