"""The worker side of multi-fidelity: rungs that continue from checkpoints, the final retrain.

A rung attempt trains a candidate up to ``epochs`` (the rung's end). The first rung starts
from scratch; a promoted candidate *continues* from the checkpoint its previous rung wrote,
with mmengine's own resume (model, optimiser and LR-scheduler state, epoch and iteration
counters), so no epoch is ever trained twice.

The LR schedule of a rung is the **full proxy schedule's prefix**: the config's
``param_scheduler`` (e.g. a cosine ending at the proxy's ``max_epochs``) is kept as it is
and only ``train_cfg.max_epochs`` is cut to the rung's end. A rung is then exactly the
first epochs of the full run, which is what makes continuation exact (resuming a prefix is
the uninterrupted run) and the metrics of one rung comparable (every candidate in a rung is
at the same point of the same schedule). The alternative, one schedule per rung (the
cosine squeezed into the rung), cannot be continued without restarting the LR, and the
fidelity study (``benchmarks/benchmark_fidelity.py``, docs/distributed_search.md) measured how the
two rank candidates.

The final retrain (``final=True``) trains the base detector config's *full* schedule from
scratch: the search config overrides the schedule with a short proxy (``max_epochs = 8`` over
the demo detector's 12); ``base_schedule`` recovers the base config's own schedule keys
(``SCHEDULE_KEYS``) from the search config file's ``_base_`` chain, and
``nas.final.schedule`` may replace them.
"""

from __future__ import annotations

import copy
import math
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional

from .trainer import BASE_SCHEDULE_KEY, SearchConfigError

#: the config keys that make a training schedule (what a final retrain replaces)
SCHEDULE_KEYS = ('train_cfg', 'param_scheduler', 'optim_wrapper', 'auto_scale_lr')


def schedule_epochs(cfg: Mapping[str, Any], what: str = 'the search config') -> int:
    """The epoch count of an epoch-based schedule that can be resumed; else a clear error.

    Rungs are measured in epochs and continued from the checkpoint saved at a rung's end, so
    the loop must be epoch based (``EpochBasedTrainLoop``, or a ``train_cfg`` with
    ``by_epoch=True``) and the checkpoint hook must not be disabled. The one owner of that
    check: the search's config check (``fidelity.check_settings``, before anything trains)
    and the workers (``rung_config``, ``final_config``) both call it; the rung arithmetic
    (``min_epochs``, ``eta`` against this count) is ``fidelity.make_rungs``'.
    """
    tcfg = cfg.get('train_cfg')
    if not isinstance(tcfg, Mapping):
        raise SearchConfigError(
            f'train_cfg: {what} has none ({tcfg!r}); allowed: '
            "dict(type='EpochBasedTrainLoop', max_epochs=N, ...)"
        )
    kind = tcfg.get('type')
    by_epoch = tcfg.get('by_epoch')
    if kind not in (None, 'EpochBasedTrainLoop') or (kind is None and by_epoch is False):
        raise SearchConfigError(
            f'train_cfg.type: {what} uses {kind or "by_epoch=False"} (iteration based); '
            'nas.fidelity needs an epoch-based schedule (EpochBasedTrainLoop with max_epochs) '
            'whose rungs end at epoch boundaries and are resumed from their checkpoints'
        )
    max_epochs = tcfg.get('max_epochs')
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise SearchConfigError(
            f'train_cfg.max_epochs: {what} has {max_epochs!r}; allowed: an integer >= 1'
        )
    hooks = cfg.get('default_hooks')
    if isinstance(hooks, Mapping) and 'checkpoint' in hooks and hooks['checkpoint'] is None:
        raise SearchConfigError(
            f'default_hooks.checkpoint: {what} disables checkpoints (None); a rung continues '
            "from the checkpoint of the previous one: keep dict(type='CheckpointHook', ...)"
        )
    return int(max_epochs)


def _checkpoint_epoch(path: str) -> int:
    """The epoch a checkpoint was saved at (from its meta; loads on the CPU)."""
    from mmengine.runner.checkpoint import _load_checkpoint

    ckpt = _load_checkpoint(path, map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, Mapping) else None
    if not isinstance(meta, Mapping) or 'epoch' not in meta:
        raise ValueError(
            f'resume_from: {path} has no meta.epoch; a rung continues from a checkpoint '
            "mmengine's CheckpointHook saved"
        )
    return int(meta['epoch'])


def rung_config(
    ccfg: Dict[str, Any], epochs: Optional[int], resume_from: Optional[str]
) -> Dict[str, Any]:
    """Cut a candidate config to end at epoch ``epochs``, continuing from ``resume_from``.

    The param schedulers are left untouched (a rung is a prefix of the full schedule); the
    checkpoint hook always saves at the rung's end (the next rung resumes from it) and the
    rung ends with a validation. Returns the config (modified in place).
    """
    if epochs is None and resume_from is None:
        return ccfg
    full = schedule_epochs(ccfg, 'the candidate config')
    if epochs is None:
        epochs = full
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= full:
        raise ValueError(
            f'epochs: got {epochs!r}; allowed: an integer in 1..{full} (the full proxy '
            'schedule, train_cfg.max_epochs)'
        )
    tcfg = dict(ccfg['train_cfg'])
    tcfg['max_epochs'] = epochs
    tcfg['val_interval'] = epochs  # a rung is compared on its last epoch
    ccfg['train_cfg'] = tcfg
    hooks = dict(ccfg.get('default_hooks') or {})
    ck = dict(hooks.get('checkpoint') or dict(type='CheckpointHook'))
    ck['save_last'] = True
    ck['interval'] = epochs
    ck['max_keep_ckpts'] = 1
    hooks['checkpoint'] = ck
    ccfg['default_hooks'] = hooks
    if resume_from is not None:
        if not osp.isabs(resume_from) or not osp.isfile(resume_from):
            raise FileNotFoundError(
                f'resume_from: {resume_from!r} is not an existing absolute path; it must be '
                'the checkpoint the previous rung of this trial returned'
            )
        start = _checkpoint_epoch(resume_from)
        if start >= epochs:
            raise ValueError(
                f'epochs: got {epochs}, but {resume_from} is already at epoch {start}; a '
                'continuation must train to a later epoch'
            )
        ccfg['resume'] = True
        ccfg['load_from'] = resume_from
    return ccfg


def final_config(ccfg: Dict[str, Any], schedule: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The candidate config with the full schedule ``schedule`` (from ``base_schedule``
    or ``nas.final.schedule``) merged over the proxy's, from scratch. ``None`` keeps the
    config's own schedule (a config without a proxy override)."""
    from mmengine.config import Config

    out = Config(ccfg)
    if schedule:
        unknown = sorted(set(schedule) - set(SCHEDULE_KEYS) - {'default_hooks'})
        if unknown:
            raise SearchConfigError(
                f'nas.final.schedule: unknown key(s) {unknown}; allowed: '
                f'{sorted((*SCHEDULE_KEYS, "default_hooks"))}'
            )
        out.merge_from_dict(copy.deepcopy(dict(schedule)))
    d = out.to_dict()
    full = schedule_epochs(d, 'the final schedule')
    d['resume'] = False
    d['load_from'] = None
    tcfg = dict(d['train_cfg'])
    tcfg.setdefault('val_interval', full)
    d['train_cfg'] = tcfg
    hooks = dict(d.get('default_hooks') or {})
    ck = dict(hooks.get('checkpoint') or dict(type='CheckpointHook'))
    ck['save_last'] = True
    hooks['checkpoint'] = ck
    d['default_hooks'] = hooks
    return d


def base_schedule(config_path: str) -> Dict[str, Any]:
    """The schedule of the detector config a search config inherits, before the search's
    proxy override: the ``SCHEDULE_KEYS`` of the first ``_base_`` file that has a
    ``train_cfg``, resolved through that file's own bases.

    The search config (``configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py``) sets
    ``max_epochs = 8`` over ``configs/demo/retinanet_gpunet-0_fpn_demo.py``'s 12; this returns
    the 12-epoch ``train_cfg`` and its ``param_scheduler`` (and optimiser).
    """
    from mmengine.config import Config

    if not osp.isfile(config_path):
        raise FileNotFoundError(f'search config not found: {config_path}')
    bases = _bases_of(config_path)
    for base in bases:
        cfg = Config.fromfile(base).to_dict()
        if isinstance(cfg.get('train_cfg'), Mapping):
            return {k: copy.deepcopy(cfg[k]) for k in SCHEDULE_KEYS if k in cfg}
    raise SearchConfigError(
        f'{config_path}: none of its _base_ files {bases} has a train_cfg; give the final '
        'schedule as nas.final.schedule=dict(train_cfg=..., param_scheduler=...)'
    )


def record_base_schedule(cfg: Dict[str, Any], config_path: str) -> None:
    """Keep ``base_schedule(config_path)`` in the search config (``BASE_SCHEDULE_KEY``), so
    the journal holds the full schedule next to the proxy and a final retrain started later
    from the work_dir alone trains it. A config none of whose bases has a ``train_cfg`` (the
    search config is the detector config) records nothing: its own schedule is the full one."""
    if BASE_SCHEDULE_KEY in cfg:
        return
    try:
        cfg[BASE_SCHEDULE_KEY] = base_schedule(config_path)
    except SearchConfigError:
        pass


def final_schedule(cfg: Mapping[str, Any], final: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The schedule overrides a final retrain trains with: ``nas.final.schedule`` when given,
    else the base config's own (:func:`record_base_schedule`), else None (the candidate
    config's own schedule, for a search config with no base schedule)."""
    if final.get('schedule') is not None:
        return dict(final['schedule'])
    base = cfg.get(BASE_SCHEDULE_KEY)
    return copy.deepcopy(dict(base)) if base else None


def _bases_of(config_path: str) -> List[str]:
    """The ``_base_`` files a config names (absolute paths, in order)."""
    import ast

    with open(config_path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), config_path)
    names: List[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
    here = osp.dirname(osp.abspath(config_path))
    return [n if osp.isabs(n) else osp.normpath(osp.join(here, n)) for n in names]


def rescaled_schedule(ccfg: Dict[str, Any], epochs: int) -> Dict[str, Any]:
    """One schedule per rung: the config's schedule squeezed into ``epochs`` (every epoch-
    based scheduler's ``begin``/``end`` scaled by ``epochs / max_epochs``; iteration-based
    warm-ups kept), training from scratch. The fidelity study compares it with the prefix
    rungs of ``rung_config``; it cannot be continued."""
    full = schedule_epochs(ccfg, 'the candidate config')
    out = copy.deepcopy(ccfg)
    scheds = out.get('param_scheduler') or []
    scheds = [scheds] if isinstance(scheds, dict) else list(scheds)
    for s in scheds:
        if not s.get('by_epoch', True):
            continue
        if isinstance(s.get('begin'), (int, float)):
            s['begin'] = round(s['begin'] * epochs / full)
        if isinstance(s.get('end'), (int, float)):
            s['end'] = max(1, round(min(s['end'], full) * epochs / full))
        if isinstance(s.get('T_max'), (int, float)):
            s['T_max'] = max(1, round(s['T_max'] * epochs / full))
    out['param_scheduler'] = scheds
    out['train_cfg'] = dict(out['train_cfg'], max_epochs=epochs, val_interval=epochs)
    hooks = dict(out.get('default_hooks') or {})
    hooks['checkpoint'] = dict(
        hooks.get('checkpoint') or dict(type='CheckpointHook'), interval=epochs, save_last=True
    )
    out['default_hooks'] = hooks
    return out


def rank_agreement(
    low: Mapping[str, float], full: Mapping[str, float], top_k: int = 3
) -> Dict[str, Any]:
    """How well metrics at a low fidelity rank candidates against their full-schedule
    metrics: Kendall tau (tau-b, ties allowed) and the share of the full schedule's top
    ``top_k`` that the low fidelity's top ``top_k`` holds."""
    from scipy.stats import kendalltau

    names = [n for n in full if n in low]
    if len(names) < 3:
        raise ValueError(f'rank_agreement needs >= 3 candidates in both; got {len(names)}')
    a = [float(low[n]) for n in names]
    b = [float(full[n]) for n in names]
    tau = kendalltau(a, b).statistic
    k = min(top_k, len(names))
    top_low = set(sorted(names, key=lambda n: -low[n])[:k])
    top_full = set(sorted(names, key=lambda n: -full[n])[:k])
    return dict(
        kendall_tau=None if tau is None or not math.isfinite(tau) else float(tau),
        top_k=k,
        top_k_overlap=len(top_low & top_full) / k,
        n=len(names),
    )
