"""Foreign results are not taken as real ones; a refused start leaves nothing; no hangs.

Issue 20: a warm start re-uses only what is valid for the new search, the journal's hash
chain covers the tables results are read from (and its head shows a truncation), a bad
``nas.simulate`` value or an unreachable ``--ray-address`` ends with a message, not a hang.
"""

import copy
import sqlite3

import pytest

from gpunet_mm.search import LocalExecutor, SearchJournal
from gpunet_mm.search.api import plan_warm_start, run_search
from gpunet_mm.search.journal import JournalError
from gpunet_mm.search.trainer import SearchConfigError

from .conftest import FakeLatency, surrogate_trainer


def _run(cfg, work_dir, **kw):
    return run_search(
        cfg,
        str(work_dir),
        simulate=kw.pop('simulate', True),
        executor=LocalExecutor(surrogate_trainer(), num_workers=2),
        latency=FakeLatency(),
        write_reports=False,
        **kw,
    )


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    """One small simulated search (module-wide: several tests read it, none writes it)."""
    cfg = dict(
        search_space=dict(type='GPUNetSpace', variant='detection', resolutions=[320, 384]),
        search_optimizer=dict(type='RandomSearch', seed=0),
        nas=dict(
            metric='metric',
            num_trials=4,
            calibration_samples=1,
            simulate=dict(budgets=[1.6], num_workers=2),
        ),
    )
    wd = tmp_path_factory.mktemp('sim_a')
    _run(cfg, wd)
    return cfg, str(wd)


def real_cfg(sim: dict, scope: str = 'mmdet', metric: str = 'metric') -> dict:
    cfg = copy.deepcopy(sim)
    cfg['default_scope'] = scope
    cfg['nas']['metric'] = metric
    return cfg


# ------------------------------------------------------------------ warm start
def test_simulated_results_are_not_warm_start_for_a_real_search(finished_run):
    sim, src = finished_run
    plan = plan_warm_start(real_cfg(sim), 'metric', simulate=False, other=src)
    assert plan.trials == []
    assert len(plan.skipped) == 1 and 'a --simulate run' in plan.skipped[0]
    assert src in plan.skipped[0]


def test_other_metric_or_task_is_skipped_and_said(finished_run):
    sim, src = finished_run
    plan = plan_warm_start(sim, 'accuracy/top1', simulate=True, other=src)
    assert plan.trials == [] and "its metric is 'metric'" in plan.skipped[0]


def test_same_search_reuses_every_finished_trial(finished_run):
    sim, src = finished_run
    plan = plan_warm_start(sim, 'metric', simulate=True, other=src)
    j = SearchJournal.open(src)
    done = [t for t in j.trials(('complete',))]
    j.close()
    assert [t[0] for t in plan.trials] == [t.id for t in done] and plan.skipped == []


def test_schedule_difference_is_skipped(finished_run, tmp_path):
    """Two real searches: another train_cfg (schedule) makes every earlier trial foreign."""
    sim, _ = finished_run
    a = real_cfg(sim)
    a['train_cfg'] = dict(max_epochs=6)
    src = str(tmp_path / 'real_a')
    j = SearchJournal.create(src, dict(a, _mode='train', _warm_start=None))
    t = j.add_trial('h', {'rows': []}, 'optimizer:0', 0, 1.0)
    j.update_trial(t.id, 'complete', status='complete', metric=0.4, result={})
    j.close()
    b = real_cfg(sim)
    b['train_cfg'] = dict(max_epochs=12)
    plan = plan_warm_start(b, 'metric', simulate=False, other=src)
    assert plan.trials == [] and 'schedule (train_cfg) differs' in plan.skipped[0]
    assert [x[0] for x in plan_warm_start(a, 'metric', False, src).trials] == [t.id]


def test_refused_warm_start_leaves_nothing_and_names_the_source(finished_run, tmp_path):
    sim, src = finished_run
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'journal.sqlite').write_bytes(b'garbage, not a database' * 100)
    new = tmp_path / 'new'
    with pytest.raises(JournalError) as e:
        _run(sim, new, warm_start=str(broken))
    assert f'--warm-start {broken}' in str(e.value)
    assert not new.exists()  # nothing half-made: the corrected command runs as it is
    _run(sim, new, warm_start=src)
    assert SearchJournal.open(str(new)).events('warm_start')[-1]['data']['trials'] >= 1


# ------------------------------------------------------------------ the hash chain
def test_hand_edited_trial_metric_is_found(finished_run, tmp_path):
    import shutil

    _, src = finished_run
    wd = tmp_path / 'copy'
    shutil.copytree(src, wd)
    con = sqlite3.connect(wd / 'journal.sqlite')
    tid = con.execute("SELECT id FROM trials WHERE status='complete' LIMIT 1").fetchone()[0]
    con.execute('UPDATE trials SET metric=99.9 WHERE id=?', (tid,))
    con.commit()
    con.close()
    with pytest.raises(JournalError, match=rf'trial {tid} metric is 99.9, the events say'):
        SearchJournal.open(str(wd))


def test_deleted_last_events_are_found(finished_run, tmp_path):
    import shutil

    _, src = finished_run
    wd = tmp_path / 'copy'
    shutil.copytree(src, wd)
    con = sqlite3.connect(wd / 'journal.sqlite')
    last = con.execute('SELECT MAX(seq) FROM events').fetchone()[0]
    con.execute('DELETE FROM events WHERE seq > ?', (last - 20,))
    con.commit()
    con.close()
    with pytest.raises(JournalError, match=rf'last event is {last}, but the events end at'):
        SearchJournal.open(str(wd))


# ------------------------------------------------------------------ hangs
def test_nan_duration_sigma_is_refused_not_a_hang(finished_run, tmp_path):
    sim, _ = finished_run
    cfg = copy.deepcopy(sim)
    cfg['nas']['simulate']['duration_sigma'] = float('nan')
    with pytest.raises(SearchConfigError, match=r'nas\.simulate\.duration_sigma: got nan'):
        run_search(cfg, str(tmp_path / 'wd'), simulate=True)
    assert not (tmp_path / 'wd').exists()


def test_unreachable_ray_address_is_an_error_naming_it():
    """``--ray-address 127.0.0.1:1`` (nothing listens): Ray itself would retry forever."""
    from gpunet_mm.search import SearchError
    from gpunet_mm.search.ray_executor import init_ray

    with pytest.raises(SearchError) as e:
        init_ray('127.0.0.1:1')
    msg = str(e.value)
    assert '--ray-address 127.0.0.1:1' in msg and 'ray start --head --port=1' in msg
    with pytest.raises(SearchError, match='allowed: HOST:PORT'):
        init_ray('localhost')


def test_tuples_and_lists_are_the_same_schedule(finished_run, tmp_path):
    """The journal keeps the config as JSON; a config's tuples are its lists."""
    sim, _ = finished_run
    a = real_cfg(sim)
    a['param_scheduler'] = [dict(type='MultiStepLR', milestones=[8, 11])]
    src = str(tmp_path / 'real_a')
    j = SearchJournal.create(src, dict(a, _mode='train', _warm_start=None))
    t = j.add_trial('h', {'rows': []}, 'optimizer:0', 0, 1.0)
    j.update_trial(t.id, 'complete', status='complete', metric=0.4, result={})
    j.close()
    b = real_cfg(sim)
    b['param_scheduler'] = (dict(type='MultiStepLR', milestones=(8, 11)),)
    assert [x[0] for x in plan_warm_start(b, 'metric', False, src).trials] == [t.id]


def test_bad_optimizer_argument_is_refused_before_the_journal(finished_run, tmp_path):
    sim, _ = finished_run
    cfg = copy.deepcopy(sim)
    cfg['search_optimizer'] = dict(type='LaMCTSBO', n_init='4')
    with pytest.raises(SearchConfigError, match=r"search_optimizer\.n_init: got '4'"):
        _run(cfg, tmp_path / 'wd')
    assert not (tmp_path / 'wd').exists()


def test_truncated_predictor_file_is_named_before_anything_starts(tmp_path):
    """A real search config whose predictor.path is cut short: a config error naming it."""
    import os

    from gpunet_mm.datasets import generate_detection_demo
    from gpunet_mm.search.api import load_search_config, validate_config

    from .conftest import ROOT

    root = tmp_path / 'demo'
    generate_detection_demo(str(root), num_train=2, num_val=1, image_size=64, seed=1)
    cfg = load_search_config(
        os.path.join(ROOT, 'configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py')
    )
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key]['dataset']['data_root'] = str(root) + '/'
    # the data check also reads the evaluator's file (a fresh clone has no data/demo_det)
    cfg['val_evaluator']['ann_file'] = str(root / 'annotations/instances_val.json')
    pred = tmp_path / 'pred.json'
    pred.write_text('{"coef": [1.0, 2')
    cfg['predictor'] = dict(path=str(pred))
    with pytest.raises(SearchConfigError, match=rf'predictor.path: predictor file {pred}: not'):
        validate_config(cfg)
