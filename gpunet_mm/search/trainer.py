"""The search's client side: train and evaluate one candidate with an mmengine Runner.

A search config is an ordinary mmdet (or mmpretrain) config plus the search's own keys
(:data:`SEARCH_KEYS`). :func:`candidate_config` turns it into the config of one candidate:
the GPUNet backbone gets the candidate's ``arch=``, the neck's ``in_channels`` (the
classifier head's ``in_channels``) follow the arch's level channels, the input resize
follows the arch's resolution, and everything else (data, schedule, head) is the user's.
The same function writes the winners' configs, so what the search trained is what
``tools/train.py`` trains.
"""

from __future__ import annotations

import math
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Sequence

#: the base detector config's own schedule, recorded in the search config when it is loaded
#: (:func:`gpunet_mm.search.api.load_search_config`), so the journal keeps it and a final
#: retrain (also ``tools/nas_search.py --final WORK_DIR`` later) trains it
BASE_SCHEDULE_KEY = '_base_schedule'
#: top-level keys of a search config that are not part of the model/training config
SEARCH_KEYS = (
    'nas',
    'latency_target',
    'search_space',
    'search_optimizer',
    'predictor',
    BASE_SCHEDULE_KEY,
)


class SearchConfigError(ValueError):
    """The search config cannot be used (names the key and what is allowed)."""


def backbone_of(cfg: Dict[str, Any]) -> Dict[str, Any]:
    model = cfg.get('model') or {}
    bb = model.get('backbone') if isinstance(model, dict) else None
    if not isinstance(bb, dict) or bb.get('type') != 'GPUNet':
        got = None if not isinstance(bb, dict) else bb.get('type')
        raise SearchConfigError(
            f"the base config's model.backbone type is {got!r}; the search replaces a "
            "GPUNet backbone, so the base config needs model.backbone=dict(type='GPUNet', ...)"
        )
    return bb


def candidate_config(
    cfg: Dict[str, Any],
    arch: Dict[str, Any],
    work_dir: Optional[str] = None,
    apply_resolution: bool = True,
) -> Dict[str, Any]:
    """The training config of one candidate (a plain dict; search keys removed): the arch
    goes in by :func:`~gpunet_mm.arch_config.with_arch`, the pipelines resize to the arch's
    resolution unless ``apply_resolution=False``."""
    from ..arch_config import with_arch
    from ..models.arch_spec import GPUNetArch

    a = GPUNetArch.from_dict(arch)
    base = {k: v for k, v in cfg.items() if k not in SEARCH_KEYS}
    backbone_of(base)
    out = with_arch(base, a, resolution=a.resolution if apply_resolution else None)
    if work_dir is not None:
        out['work_dir'] = work_dir
    return out


class _Capture:
    """Keeps the last validation metrics and checks every training loss is finite; notes
    the epoch training starts at (after a resume: the checkpoint's)."""

    def __init__(self) -> None:
        self.metrics: Dict[str, float] = {}
        self.start_epoch = 0
        self.val_epoch: Optional[int] = None  # the epoch of the last validation

    def hook(self):
        from mmengine.hooks import Hook

        outer = self

        class SearchTrialHook(Hook):
            priority = 'VERY_LOW'

            def before_train(self, runner) -> None:
                outer.start_epoch = int(runner.epoch)

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                if not outputs:
                    return
                for k, v in outputs.items():
                    if 'loss' in k:
                        val = float(v.detach().float().sum()) if hasattr(v, 'detach') else float(v)
                        if not math.isfinite(val):
                            raise FloatingPointError(
                                f'{k} is {val} at iteration {runner.iter + 1}: training '
                                'diverged (NaN/inf loss)'
                            )

            def after_val_epoch(self, runner, metrics=None):
                outer.val_epoch = int(runner.epoch)
                if metrics:
                    outer.metrics = {
                        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))
                    }

        return SearchTrialHook()


def train_candidate(
    cfg: Dict[str, Any],
    arch: Dict[str, Any],
    work_dir: str,
    threads: Optional[int] = None,
    extra_hooks: Sequence[Any] = (),
    launcher: str = 'none',
    epochs: Optional[int] = None,
    resume_from: Optional[str] = None,
    final: bool = False,
    final_schedule: Optional[Dict[str, Any]] = None,
    inherit_from: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Train and evaluate one candidate; returns its metrics, size, time and files.

    Runs in a search worker process (a Ray task) or in-process. Raises on failure: the
    controller records the error and retries up to its limit.

    Multi-fidelity (:mod:`gpunet_mm.search.continuation`): ``epochs`` ends the attempt at that
    epoch of the proxy schedule (a rung), ``resume_from`` continues from the previous rung's
    checkpoint with mmengine's resume; ``final`` trains the full schedule ``final_schedule``
    from scratch; ``inherit_from=dict(checkpoint=..., arch=...)`` starts a new candidate from
    a finished one's weights (:mod:`gpunet_mm.search.inherit`). The result then also holds
    ``epochs`` (reached), ``epochs_trained`` (added by this attempt) and ``checkpoint``.
    """
    import torch
    from mmengine.config import Config

    from ..apis.runner import init_cpu_distributed, make_runner
    from ..complexity import count_params
    from ..models.arch_spec import GPUNetArch

    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    os.makedirs(work_dir, exist_ok=True)
    from .continuation import final_config, rung_config

    cand = candidate_config(cfg, arch, work_dir=work_dir)
    cand = final_config(cand, final_schedule) if final else rung_config(cand, epochs, resume_from)
    ccfg = Config(cand)
    ccfg.experiment_name = osp.basename(osp.normpath(work_dir))
    init_cpu_distributed(ccfg, launcher)  # gloo when a torchrun'd trial has no GPU
    runner = make_runner(ccfg, launcher)
    capture = _Capture()
    runner.register_hook(capture.hook())
    inherit = None
    if inherit_from and not ccfg.get('resume'):
        from .inherit import inherit_hook

        inherit = inherit_hook(inherit_from['checkpoint'])
        runner.register_hook(inherit)
    for h in extra_hooks:
        runner.register_hook(h)
    runner.train()
    if capture.val_epoch != runner.epoch:  # the schedule ran no validation at its end
        capture.metrics = {k: float(v) for k, v in (runner.val() or {}).items()}
    if not capture.metrics and 'CocoMetric' in str((ccfg.get('val_evaluator') or {}).get('type')):
        # mmdet's CocoMetric returns nothing when no image has a detection above the score
        # threshold (a short first rung of a detector trained from scratch): that is mAP 0
        metric = (cfg.get('nas') or {}).get('metric') or 'coco/bbox_mAP'
        capture.metrics = {metric: 0.0, 'no_detections': 1.0}
    ckpt = None
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            ckpt = f.read().strip() or None
    a = GPUNetArch.from_dict(arch)
    from ..nas.latency_proxy import arch_flops

    result: Dict[str, Any] = dict(capture.metrics)
    result.update(empty_detection_metric(cfg, result))
    result.update(
        params=int(count_params(runner.model)),
        backbone_gflops=float(arch_flops(a)),
        train_wall_s=time.perf_counter() - t0,
        checkpoint=osp.abspath(ckpt) if ckpt else None,
        log_dir=runner.log_dir,
        work_dir=work_dir,
        epochs=int(runner.epoch),
        epochs_trained=int(runner.epoch) - capture.start_epoch,
    )
    if inherit is not None:
        result['inherited'] = dict(inherit.report.to_dict(), checkpoint=inherit.checkpoint)
    return result


def empty_detection_metric(cfg: Dict[str, Any], metrics: Dict[str, float]) -> Dict[str, Any]:
    """The search metric of a detector that detected nothing: 0, with a warning.

    After a short proxy schedule a detector may score no box above its
    ``model.test_cfg.score_thr``; mmdet's ``CocoMetric`` then logs "The testing results of
    the whole dataset is empty" and returns no ``coco/*`` key at all. That is a mAP of 0
    (the candidate found nothing), not a failed training: returns ``{metric: 0.0,
    'warning': ...}`` in that case, ``{}`` otherwise.
    """
    import logging

    from .api import nas_settings

    name = str(nas_settings(cfg)['metric'])
    prefix = name.split('/')[0] + '/'
    if name in metrics or not name.startswith('coco/'):
        return {}
    if any(str(k).startswith(prefix) for k in metrics):
        return {}  # the evaluator ran and named other keys: a wrong nas.metric, not empty
    thr = ((cfg.get('model') or {}).get('test_cfg') or {}).get('score_thr')
    msg = (
        f"no detection above model.test_cfg.score_thr={thr} on the validation set: mmdet's "
        f'COCO metric is empty; {name} counted as 0. After a short proxy schedule, a lower '
        'score_thr for evaluation (e.g. 0.01) lets the ranking see weak detections'
    )
    logging.getLogger('gpunet_mm.search').warning(msg)
    return {name: 0.0, 'warning': msg}


def winner_config_text(cfg: Dict[str, Any], arch: Dict[str, Any], header: List[str]) -> str:
    """A ready-to-train config file for a found architecture (``arch=`` inline)."""
    from mmengine.config import Config

    ccfg = candidate_config(cfg, arch)
    ccfg.pop('work_dir', None)
    text = Config(ccfg).pretty_text
    return '\n'.join('# ' + h for h in header) + '\n' + text
