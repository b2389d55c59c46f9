"""Run a search from a config: everything ``tools/nas_search.py`` does, as a function.

The search config is an mmdet (or mmpretrain) config that also holds the search keys::

    _base_ = ['../demo/retinanet_gpunet-0_fpn_demo.py', './_base_/gpunet_det_space.py']
    nas = dict(metric='coco/bbox_mAP', budgets=[40.0], num_trials=8, num_workers=2, ...)
    latency_target = dict(backend='onnxruntime', device='cpu', precision='fp32', ...)
    search_optimizer = dict(type='LaMCTSBO', ...)
    predictor = dict(path=None)

See ``configs/nas/`` and docs/distributed_search.md for every key.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..schema import (
    LatencyTargetSettings,
    NasSettings,
    PredictorSettings,
    SchemaError,
    SearchSpaceSettings,
    validate,
)
from .controller import NAS_DEFAULTS as NAS_DEFAULTS  # the public name of the nas defaults
from .controller import ControllerOptions, SearchController, SearchError, SearchHalted, halt_message
from .faults import disk_full_reason
from .journal import JournalError, SearchJournal, config_diff
from .trainer import SearchConfigError, backbone_of

logger = logging.getLogger('gpunet_mm.search')

#: ``nas`` keys a resumed search may change (they do not change what was computed)
RESUMABLE = (
    'nas.num_workers',
    'nas.num_trials',
    'nas.resources',
    'nas.trial_timeout_s',
    'nas.threads',
    'nas.propose_ahead',
    'nas.nproc_per_trial',
    'nas.compute_budget',  # more (or less) compute for a resumed search
    'nas.final',  # a final retrain added later (tools/nas_search.py --final WORK_DIR)
    '_base_schedule',  # the final retrain's schedule, read from the base config file
)

BUDGET_RE = re.compile(r'^\s*(?:(?P<f>[0-9.]+)\s*\*\s*)?(?P<ref>[A-Za-z][\w-]*)\s*$')


def nas_settings(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``nas`` dict with defaults filled in and checked by its schema (unknown keys are
    refused at every depth; see :class:`gpunet_mm.schema.NasSettings`)."""
    given = cfg.get('nas')
    out = checked(NasSettings, {} if given is None else given, 'nas').model_dump()
    if out['metric'] is None:
        out['metric'] = (
            'accuracy/top1' if cfg.get('default_scope') == 'mmpretrain' else 'coco/bbox_mAP'
        )
    return out


def checked(model: Any, data: Any, where: str) -> Any:
    """:func:`gpunet_mm.schema.validate` with the search's error type."""
    try:
        return validate(model, data, where)
    except SchemaError as e:
        raise SearchConfigError(str(e)) from None


def parse_budget(b: Any) -> Tuple[Optional[float], Optional[str], float]:
    """``2.0`` -> (2.0, None, 1); ``'1.2*GPUNet-0'`` -> (None, 'GPUNet-0', 1.2)."""
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        if not np.isfinite(b) or b <= 0:
            raise SearchConfigError(f'budget: got {b!r}; allowed: a positive number of ms')
        return float(b), None, 1.0
    if isinstance(b, str):
        try:
            return parse_budget(float(b))
        except ValueError:
            pass
        m = BUDGET_RE.match(b)
        if m:
            return None, m.group('ref'), float(m.group('f') or 1.0)
    raise SearchConfigError(
        f"budget: got {b!r}; allowed: ms as a number, or 'TIER' / 'FACTOR*TIER' "
        "(e.g. '1.2*GPUNet-0': 1.2 times that tier's latency measured on the target)"
    )


def load_search_config(path: str, cfg_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    from mmengine.config import Config

    if not osp.isfile(path):
        raise FileNotFoundError(f'search config not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        check_overrides(cfg.to_dict(), cfg_options)
        from ..apis.runner import merge_cfg_options

        try:
            merge_cfg_options(cfg, cfg_options)
        except ValueError as e:
            raise SearchConfigError(str(e)) from None
    d = cfg.to_dict()
    d.pop('work_dir', None)
    from .continuation import record_base_schedule

    record_base_schedule(d, path)  # the final retrain's schedule (before the proxy override)
    return d


def _paths_with(d: Any, leaf: str, value: Any, prefix: str = '') -> List[str]:
    """Dotted paths in ``d`` whose last key is ``leaf`` and whose value is ``value``."""
    out: List[str] = []
    if isinstance(d, Mapping):
        for k, v in d.items():
            path = f'{prefix}.{k}' if prefix else str(k)
            if k == leaf and v == value and prefix:
                out.append(path)
            out += _paths_with(v, leaf, value, path)
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            out += _paths_with(v, leaf, value, f'{prefix}.{i}')
    return out


def check_overrides(cfg: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """Refuse an override of a top-level config variable that the config has already
    expanded into the settings that use it: ``max_epochs=1`` changes the variable, not
    ``train_cfg.max_epochs`` (the config file was executed before the override), so the
    search would silently train the file's schedule. The error names the key to use."""
    for key, new in options.items():
        if '.' in key or key not in cfg or isinstance(cfg[key], (Mapping, list, tuple)):
            continue
        used = _paths_with(cfg, key, cfg[key])
        if used and new != cfg[key]:
            raise SearchConfigError(
                f'--cfg-options {key}={new!r} changes only the top-level variable {key!r}, '
                f'which the config has already written into {", ".join(used)} '
                f'(= {cfg[key]!r}); override those instead, e.g. --cfg-options '
                + ' '.join(f'{u}={new!r}' for u in used)
            )


def validate_config(cfg: Dict[str, Any], simulate: bool = False) -> Dict[str, Any]:
    """Every check that can run before anything is trained or measured."""
    nas = nas_settings(cfg)
    if not simulate:
        backbone_of(cfg)
        if cfg.get('default_scope') not in ('mmdet', 'mmpretrain'):
            raise SearchConfigError(
                f"default_scope: got {cfg.get('default_scope')!r}; allowed: 'mmdet' or "
                "'mmpretrain' (inherit configs/_base_/default_runtime_det.py or _cls.py)"
            )
        if cfg.get('default_scope') == 'mmdet':
            # each candidate is timed as an exported detector: a detector the exporter has
            # no path for fails here, not after the first training
            from ..deploy.heads import UnsupportedModelError, check_model_cfg

            try:
                check_model_cfg(cfg.get('model') or {})
            except UnsupportedModelError as e:
                raise SearchConfigError(f'{e} (the search times every candidate end to end)') from e
        target = cfg.get('latency_target')
        if not isinstance(target, dict):
            raise SearchConfigError('latency_target: missing; a dict(backend=..., device=...)')
        # the schema checks the backend against the LATENCY_BACKENDS registry
        checked(LatencyTargetSettings, target, 'latency_target')
        budgets = nas['budgets']
    else:
        budgets = nas['simulate']['budgets']
    if not budgets:
        raise SearchConfigError('nas.budgets: empty; give at least one budget in ms')
    for b in budgets:
        parse_budget(b)
    if not simulate:
        check_data(cfg)
        if cfg.get('default_scope') == 'mmdet':
            check_exportable(cfg)
    for key in ('search_space', 'search_optimizer'):
        if not isinstance(cfg.get(key), dict) or 'type' not in cfg[key]:
            raise SearchConfigError(f'{key}: missing; a dict(type=...) (see configs/nas/)')
        checked(SearchSpaceSettings, cfg[key], key)
    if cfg.get('predictor') is not None:
        checked(PredictorSettings, cfg['predictor'], 'predictor')
        if not simulate:
            base_predictor(cfg, simulate)  # a bad file is named now, not after the journal
    from ..nas import METHODS, NAS_OPTIMIZERS, build_space

    kind = cfg['search_optimizer']['type']
    if METHODS.get(kind, kind) not in NAS_OPTIMIZERS.module_dict:
        raise SearchConfigError(
            f'search_optimizer.type: got {kind!r}; allowed: {", ".join(NAS_OPTIMIZERS.module_dict)}'
        )
    from ..schema import check_arguments

    try:  # each class's signature is its schema; checked before any journal is created
        opt_kw = {k: v for k, v in cfg['search_optimizer'].items() if k != 'type'}
        check_arguments(NAS_OPTIMIZERS.get(METHODS.get(kind, kind)), opt_kw, 'search_optimizer')
        build_space(cfg['search_space'])
    except SchemaError as e:
        raise SearchConfigError(str(e)) from None
    from .fidelity import check_settings

    check_settings(cfg, nas, simulate)
    if (cfg.get('nas') or {}).get('fidelity') is not None:
        with_random_fraction(cfg)  # a contradiction is named before the journal exists
    if nas['inherit'] is not None:
        from .fidelity import rungs_of
        from .inherit import check_parent_rung

        try:
            check_parent_rung(nas['inherit']['parent_rung'], rungs_of(cfg, nas, simulate))
        except ValueError as e:
            raise SearchConfigError(str(e)) from None
    return nas


def check_exportable(cfg: Mapping[str, Any]) -> None:
    """The detector can be exported and timed end to end (every candidate's latency is),
    checked once on the first reference tier before anything is trained or measured."""
    from mmengine.config import Config

    from ..deploy.latency import model_cfg
    from ..deploy.loading import UnsupportedModelError, build_detector, head_kind
    from ..models.tiers import get_tier

    ref = (nas_settings(cfg).get('references') or ['GPUNet-0'])[0]
    try:
        model = model_cfg(get_tier(ref), {'model': cfg['model']})
        head_kind(build_detector(Config(dict(model=model))))
    except (UnsupportedModelError, ValueError) as e:
        raise SearchConfigError(f'model: the search cannot time this detector: {e}') from e


def check_data(cfg: Mapping[str, Any]) -> None:
    """The data the trainings read (the train and val dataloaders, through any dataset
    wrapper, and the val evaluator's annotation file) is there, before the journal exists:
    ``gpunet_mm.apis.check_dataset_files``, the one owner of that check, which every
    worker also runs before it trains. Raises ``SearchConfigError`` naming the key."""
    from ..apis.runner import DatasetFilesError, check_dataset_files

    try:
        check_dataset_files(cfg, ('train', 'val'))
    except DatasetFilesError as e:
        raise SearchConfigError(str(e)) from None


# ---------------------------------------------------------------------- building blocks
def arch_hash(arch: Dict[str, Any]) -> str:
    from ..models.arch_spec import GPUNetArch

    return GPUNetArch.from_dict(arch).structural_hash()


def reference_arch(name: str, space: Any) -> Dict[str, Any]:
    """A published tier as the search trains it (at the space's resolution)."""
    from ..models.tiers import get_tier

    a = get_tier(name)
    res = getattr(space, 'resolutions', None)
    if res and a.resolution not in res:
        a = a.replace(resolution=min(res, key=lambda r: abs(r - a.resolution)))
    return a.to_dict()


def base_predictor(cfg: Mapping[str, Any], simulate: bool) -> Callable[[Any], float]:
    """Uncalibrated latency prediction ``GPUNetArch -> ms`` for pruning."""
    from ..nas.latency_proxy import latency_proxy

    pcfg = dict(cfg.get('predictor') or {})
    if simulate or not pcfg.get('path'):
        return latency_proxy
    pred = load_search_predictor(cfg)
    return lambda a: float(pred.predict(a))


def load_search_predictor(cfg: Mapping[str, Any]) -> Any:
    """``predictor.path``'s ``LatencyPredictor``, predicting at the shape the search times
    each candidate at (``latency_target.shape``, else the candidate's resolution) rather than
    the shape it was fitted at: the demo's predictor was fitted on 256 px detectors, the
    demo search times at 128 px. A relative path that is not found from here is looked up
    from the package's parent folder (the repository root of a checkout), so a config run
    from elsewhere finds a committed file."""
    from ..deploy import LatencyPredictor

    path = cfg['predictor']['path']
    if not osp.isabs(path) and not osp.isfile(path):
        root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
        if osp.isfile(osp.join(root, path)):
            path = osp.join(root, path)
    if not osp.isfile(path):
        raise SearchConfigError(f'predictor.path: {path} does not exist')
    try:
        pred = LatencyPredictor.load(path)
    except ValueError as e:
        raise SearchConfigError(f'predictor.path: {e}') from None
    pred.target = dict(pred.target, shape=(cfg.get('latency_target') or {}).get('shape'))
    return pred


def with_random_fraction(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """``search_optimizer`` of a multi-fidelity search, given ``nas.fidelity.random_fraction``
    (BOHB's random share of proposals) where the optimiser takes one. An explicit
    ``search_optimizer.random_fraction`` stands, but not one that contradicts an explicit
    ``nas.fidelity.random_fraction``; an explicit share for an optimiser without one is an
    error (the schema's default is not: the baselines propose without a model to hedge)."""
    from ..nas import METHODS, NAS_OPTIMIZERS
    from .fidelity import fidelity_settings

    ocfg = dict(cfg['search_optimizer'])
    given = cfg['nas']['fidelity']
    f = fidelity_settings(given)['random_fraction']
    cls = NAS_OPTIMIZERS.get(METHODS.get(ocfg['type'], ocfg['type']))
    takes = cls is not None and 'random_fraction' in inspect.signature(cls).parameters
    if not takes:
        if 'random_fraction' in given and f > 0:
            raise SearchConfigError(
                f'nas.fidelity.random_fraction: got {f!r}, but search_optimizer.type '
                f'{ocfg["type"]!r} takes no random share; allowed: 0, or an optimiser '
                'that models (LaMCTSBO)'
            )
        return ocfg
    if 'random_fraction' in ocfg:
        if 'random_fraction' in given and float(ocfg['random_fraction']) != f:
            raise SearchConfigError(
                f'search_optimizer.random_fraction {ocfg["random_fraction"]!r} contradicts '
                f'nas.fidelity.random_fraction {f!r}; allowed: give one of them (or the same)'
            )
        return ocfg
    ocfg['random_fraction'] = f
    return ocfg


def make_optimizers(
    cfg: Mapping[str, Any],
    budgets: Sequence[float],
    predict: Callable,
    seed: int,
    journal: SearchJournal,
    rungs: Optional[Any] = None,
) -> List[Any]:
    """One optimiser per budget, each on its journal store (reopened with its saved state
    when the search resumes; ``rungs``: the store offers the values of the rung to model)."""
    from ..nas import build_optimizer, build_space
    from .trial_store import open_optimizer

    base_ocfg = with_random_fraction(cfg) if rungs is not None else cfg['search_optimizer']
    out = []
    for i, b in enumerate(budgets):
        ocfg = dict(base_ocfg)
        ocfg['seed'] = int(ocfg.get('seed', seed)) + i
        space = build_space(cfg['search_space'])
        build = functools.partial(
            build_optimizer, ocfg, space, constraint_fn=predict, budget=float(b), minimize=False
        )
        out.append(open_optimizer(build, journal, i, space, arch_hash, rungs))
    return out


def calibration_fit(pred: Sequence[float], meas: Sequence[float]) -> Tuple[float, float]:
    """``(slope, intercept)`` of ``measured = intercept + slope * predicted`` over the
    calibration points; the median ratio through the origin with fewer than three distinct
    predictions or a fit that is not increasing with a non-negative intercept."""
    ratios = [m / p for m, p in zip(meas, pred) if p > 0]
    slope, intercept = (float(np.median(ratios)) if ratios else 1.0), 0.0
    if len(set(pred)) >= 3:
        b, a = np.polyfit(pred, meas, 1)
        if b > 0 and a >= 0:
            slope, intercept = float(b), float(a)
    return slope, intercept


def calibrate(
    space: Any,
    latency: Any,
    predict: Callable,
    references: Sequence[Dict],
    n_random: int,
    seed: int,
) -> Dict[str, Any]:
    """Anchor the predictor on the target: measure the space's fastest architecture, the
    references and a few random ones, and fit ``measured = intercept + slope * predicted``
    (a predictor made for another device keeps its ranking, not its milliseconds; the
    intercept absorbs what it leaves out, such as a detector's NMS). With fewer than three
    distinct points, or a fit that is not increasing, the median ratio is the slope."""
    from ..models.arch_spec import GPUNetArch

    smallest = space.smallest().to_dict()
    rng = np.random.default_rng(seed)
    randoms = [space.decode(x).to_dict() for x in space.sample(n_random, rng)] if n_random else []
    archs = [smallest, *references, *randoms]
    res = latency.measure(archs)
    pred = [float(predict(GPUNetArch.from_dict(a))) for a in archs]
    meas = [float(r['latency_ms']) for r in res]
    slope, intercept = calibration_fit(pred, meas)
    return dict(
        slope=slope,
        intercept=intercept,
        fastest=dict(arch_hash=arch_hash(smallest), measured_ms=meas[0], predicted_ms=pred[0]),
        references=[
            dict(arch_hash=arch_hash(a), measured_ms=m)
            for a, m in zip(references, meas[1 : 1 + len(references)])
        ],
        points=[
            dict(arch_hash=arch_hash(a), measured_ms=m, predicted_ms=p, arch=a)
            for a, m, p in zip(archs, meas, pred)
        ],
    )


def latency_model(
    cfg: Mapping[str, Any], base: Callable[[Any], float], calib: Mapping[str, Any], simulate: bool
) -> Any:
    """The pruning predictor the optimisers use: the calibration's anchor, refitted from the
    calibration points and then from every measurement the search makes
    (:class:`~gpunet_mm.deploy.refit.RefitPredictor`; a detector search also fits the whole
    detector's cost features of its own template and target)."""
    from ..deploy.refit import MODELS, RefitPredictor, grouped_features

    features = None
    pcfg = dict(cfg.get('predictor') or {})
    if not simulate and cfg.get('default_scope') == 'mmdet':
        from ..deploy import LatencyPredictor

        feat = (
            load_search_predictor(cfg)
            if pcfg.get('path')
            else LatencyPredictor.for_target(dict(cfg['model']), dict(cfg['latency_target']))
        )
        features = grouped_features(feat)
    refit = dict(pcfg.get('refit') or {})
    model = RefitPredictor(
        base,
        float(calib['slope']),
        float(calib['intercept']),
        features=features,
        models=tuple(refit.get('models') or MODELS),
        halflife=refit.get('halflife'),
        rescale=refit.get('rescale'),
    )
    for p in calib.get('points') or []:
        if p.get('arch') is not None:  # journals from before the refit have hashes only
            model.observe(p['arch'], float(p['measured_ms']), seed_point=True)
    return model


def resolve_budgets(raw: Sequence[Any], ref_latency: Mapping[str, float]) -> List[float]:
    out = []
    for b in raw:
        ms, ref, f = parse_budget(b)
        if ms is None:
            if ref not in ref_latency:
                raise SearchConfigError(
                    f'budget {b!r} refers to {ref!r}, which is not among nas.references '
                    f'{sorted(ref_latency)}; add it there'
                )
            ms = f * ref_latency[ref]
        out.append(round(float(ms), 4))
    return sorted(set(out))


# ---------------------------------------------------------------------- the search
@dataclass(frozen=True)
class _RunSettings:
    """How :func:`run_search` runs (its keyword arguments besides ``resume``, in their
    order), in one value for the function that does the work."""

    simulate: bool
    ray_address: Optional[str]
    dashboard: bool
    warm_start: Optional[WarmStartPlan]
    executor: Any
    latency: Any
    on_update: Optional[Callable[[SearchController], None]]
    write_reports: bool


def run_search(
    cfg: Dict[str, Any],
    work_dir: str,
    *,
    resume: bool = False,
    simulate: bool = False,
    ray_address: Optional[str] = None,
    dashboard: bool = False,
    warm_start: Optional[str] = None,
    executor: Any = None,
    latency: Any = None,
    on_update: Optional[Callable[[SearchController], None]] = None,
    write_reports: bool = True,
) -> Dict[str, Any]:
    """Run (or resume) a search; returns the summary also written to ``summary.json``.

    ``executor``/``latency`` replace the Ray trainings and the exported-detector timing
    (tests, custom clusters); by default they are built from the config.
    """
    from .lock import WorkDirLock

    cfg = copy.deepcopy(cfg)
    nas = validate_config(cfg, simulate)
    # decided before anything is created: a refused warm start leaves no work_dir behind
    plan = plan_warm_start(cfg, nas['metric'], simulate, warm_start) if warm_start else None
    run = _RunSettings(  # positional: the fields are in the order of this signature
        simulate, ray_address, dashboard, plan, executor, latency, on_update, write_reports
    )
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise SearchConfigError(f'--work-dir {work_dir} is a file; allowed: a folder (new or not)')
    os.makedirs(work_dir, exist_ok=True)
    with WorkDirLock(work_dir):
        stored = dict(cfg, _mode='simulate' if simulate else 'train', _warm_start=warm_start)
        if resume:
            journal = SearchJournal.open(work_dir)
            diff = [
                k
                for k in config_diff(journal.config, stored)
                if not any(k == r or k.startswith(r + '.') for r in RESUMABLE)
            ]
            if diff:
                journal.close()
                raise JournalError(
                    f'--resume: the config differs from the one the journal in {work_dir} '
                    f'was started with, at: {", ".join(diff)}. Resume with the same config '
                    '(or start a new --work-dir)'
                )
        else:
            journal = SearchJournal.create(work_dir, stored)
        try:
            if resume:
                journal.log('resume', data=dict(pid=os.getpid()))
            return _run(cfg, nas, journal, work_dir, run)
        except Exception as e:  # a full disk outside the controller's loop (calibration,
            reason = disk_full_reason(e)  # seeding, reports): the same stop as inside it
            if reason is None or isinstance(e, SearchHalted):
                raise
            logger.error('stopping the search: %s', reason)
            raise SearchHalted(halt_message(reason, osp.abspath(work_dir))) from e
        finally:
            journal.close()


@dataclass
class _Services:
    """What a search runs on: the trainings, the latency measurement, the schedule."""

    executor: Any
    latency: Any
    #: built here (so shut down here) rather than given by the caller
    owned_executor: bool
    #: the ``nas`` settings as this run uses them (a simulation reports the surrogate's metric)
    nas: Dict[str, Any]
    #: ``nas.budgets`` as written (ms or tier factors), resolved by :func:`_calibrate`
    raw_budgets: Sequence[Any]
    rungs: Any
    full_epochs: Optional[int]


def _run(
    cfg: Dict[str, Any],
    nas: Dict[str, Any],
    journal: SearchJournal,
    work_dir: str,
    run: _RunSettings,
) -> Dict[str, Any]:
    """The search, step by step: build its services, calibrate the predictor and the
    budgets on the target, build the controller (reopening the optimisers and seeding the
    pool), run it, report."""
    from ..nas import build_space

    space = build_space(cfg['search_space'])
    services = _build_services(cfg, nas, work_dir, run)
    base = base_predictor(cfg, run.simulate)
    refs = {n: reference_arch(n, space) for n in services.nas['references']}
    calib, budgets = _calibrate(journal, space, services, base, refs)
    ctrl = _build_controller(cfg, journal, work_dir, run, services, base, calib, budgets)
    if journal.meta('seeded') is None:
        for name, arch in refs.items():
            ctrl.add_reference(name, arch)
        if run.warm_start is not None:
            _warm_start(ctrl, run.warm_start)
        journal.set_meta('seeded', True)
    try:
        summary = ctrl.run()
    finally:
        if services.owned_executor:
            services.executor.shutdown()
    return _report(summary, ctrl, cfg, work_dir, run, services)


def _build_services(
    cfg: Dict[str, Any], nas: Dict[str, Any], work_dir: str, run: _RunSettings
) -> _Services:
    """The executor and the latency service: the caller's, the simulator's (``--simulate``)
    or Ray trainings and the exported model's timing on the target."""
    from ..models.arch_spec import GPUNetArch
    from .fidelity import full_epochs, load_objective, rungs_of

    executor, latency = run.executor, run.latency
    owned_executor = executor is None
    rungs = rungs_of(cfg, nas, run.simulate)
    epochs = full_epochs(cfg, nas, run.simulate)
    if run.simulate:
        from functools import partial

        from ..nas.objectives import measured_latency, surrogate_curve
        from .report import SURROGATE_METRIC
        from .simulate import SimulatedExecutor, SurrogateLatency

        if executor is None:
            # the surrogate is no trained model's score: it is never reported under the
            # evaluator's name (coco/bbox_mAP would read as a detector's mAP); an executor
            # given by the caller reports under the name it was given
            nas = dict(nas, metric=SURROGATE_METRIC)
        sim = nas['simulate']
        latency = latency or SurrogateLatency(lambda d: measured_latency(GPUNetArch.from_dict(d)))
        objective = (
            load_objective(sim['objective'])
            if sim.get('objective')
            else partial(surrogate_curve, full_epochs=epochs)
        )
        executor = executor or SimulatedExecutor(
            objective,
            num_workers=int(sim['num_workers']),
            mean_trial_s=float(sim['mean_trial_s']),
            duration_sigma=float(sim['duration_sigma']),
            failure_rate=float(sim['failure_rate']),
            seed=int(nas['seed']),
            metric=nas['metric'],
            full_epochs=epochs,
            controller_s=sim.get('controller_s'),
        )
        raw_budgets = sim['budgets']
    else:
        raw_budgets = nas['budgets']
        if executor is None or latency is None:
            from .ray_executor import init_ray

            init_ray(run.ray_address, run.dashboard)
        if latency is None:
            latency = _latency_service(cfg, work_dir)
        if executor is None:
            from .ray_executor import RayExecutor

            res = nas['resources']
            executor = RayExecutor(
                'gpunet_mm.search.worker.run_trial',
                nas['num_workers'],
                num_cpus=res.get('num_cpus', 1),
                num_gpus=res.get('num_gpus', 0),
                threads=nas['threads'],
            )
    return _Services(executor, latency, owned_executor, nas, raw_budgets, rungs, epochs)


def _latency_service(cfg: Mapping[str, Any], work_dir: str) -> Any:
    """The exported detector's (or classifier's) timing on ``latency_target``: the one
    :class:`~gpunet_mm.search.latency_service.LatencyService`, in a Ray actor on a device of
    its own when the target reserves one."""
    from .latency_service import LatencyService, RayLatency, latency_paths

    target = dict(cfg['latency_target'])
    paths = latency_paths(work_dir, target)
    if target.get('exclusive') and target.get('resources'):
        return RayLatency(
            target['resources'], LatencyService, cfg, target, paths['cache'], paths['onnx']
        )
    return LatencyService(cfg, target, paths['cache'], paths['onnx'])


def _calibrate(
    journal: SearchJournal,
    space: Any,
    services: _Services,
    base: Callable[[Any], float],
    refs: Mapping[str, Dict[str, Any]],
) -> Tuple[Dict[str, Any], List[float]]:
    """``(calibration, budgets in ms)``: measured on the target by a new search, read from
    the journal by a resumed one."""
    nas = services.nas
    calib = journal.meta('calibration')
    if calib is None:  # a new search: anchor the predictor and the budgets on the target
        calib = calibrate(
            space,
            services.latency,
            base,
            list(refs.values()),
            int(nas['calibration_samples']),
            int(nas['seed']),
        )
        journal.set_meta('calibration', calib)
    ref_lat = {n: r['measured_ms'] for n, r in zip(refs, calib['references'])}
    budgets = journal.meta('budgets')
    if budgets is None:
        budgets = resolve_budgets(services.raw_budgets, ref_lat)
        fastest = calib['fastest']
        if min(budgets) < fastest['measured_ms']:
            raise SearchError(
                f'budget {min(budgets)} ms is below the fastest architecture of the search '
                f'space ({fastest["arch_hash"]}: measured {fastest["measured_ms"]:.3f} ms, '
                f'predicted {calib["intercept"] + fastest["predicted_ms"] * calib["slope"]:.3f} '
                'ms on this '
                'target); raise the budget or shrink the space'
            )
        journal.set_meta('budgets', budgets)
    return calib, budgets


def _build_controller(
    cfg: Dict[str, Any],
    journal: SearchJournal,
    work_dir: str,
    run: _RunSettings,
    services: _Services,
    base: Callable[[Any], float],
    calib: Mapping[str, Any],
    budgets: List[float],
) -> SearchController:
    """The controller with its optimisers (reopened from the journal) and the refitted
    latency predictor they prune with."""
    nas = services.nas
    model = latency_model(cfg, base, calib, run.simulate)
    optimizers = make_optimizers(
        cfg, budgets, model.predict, int(nas['seed']), journal, services.rungs
    )
    model.on_refit = lambda: [o.constraint_changed() for o in optimizers]
    payload = dict(
        cfg=cfg,
        work_dir=osp.abspath(work_dir),
        threads=nas['threads'],
        nproc=int(nas['nproc_per_trial']),
    )
    opts = ControllerOptions.from_nas(
        nas,
        poll_s=0.5,
        payload={} if run.simulate else payload,
        rungs=services.rungs,
        full_epochs=services.full_epochs,
        final=None if nas['final'] is None else _final(cfg, nas['final']),
    )
    ctrl = SearchController(
        journal,
        optimizers,
        budgets,
        services.executor,
        services.latency,
        arch_hash,
        nas['metric'],
        opts,
        on_update=run.on_update,
    )
    for t in journal.trials():  # a resumed search refits from what it measured before
        if t.latency_ms is not None:
            model.observe(t.arch, float(t.latency_ms), not t.origin.startswith('optimizer'))
    ctrl.latency_model = model
    return ctrl


def _report(
    summary: Dict[str, Any],
    ctrl: SearchController,
    cfg: Dict[str, Any],
    work_dir: str,
    run: _RunSettings,
    services: _Services,
) -> Dict[str, Any]:
    """The summary completed (simulator figures, predictor, Pareto neighbours, dataset),
    the reports written, and ``summary.json``."""
    executor = services.executor
    if run.simulate and hasattr(executor, 'dispatch_efficiency'):
        summary['dispatch_efficiency'] = executor.dispatch_efficiency()
        summary['utilisation_with_drain'] = executor.utilisation()
        summary['virtual_wall_s'] = executor.clock()
        summary['num_workers'] = executor.num_workers
    summary['mode'] = 'simulate' if run.simulate else 'train'
    summary['latency_predictor'] = ctrl.latency_model.state()
    summary['neighbours'] = _neighbours(ctrl)
    if not run.simulate:
        from .report import dataset_of

        summary['dataset'] = dataset_of(cfg)
    if run.write_reports:
        from .report import write_reports as _write

        summary['files'] = _write(ctrl, cfg, work_dir, services.nas, run.simulate)
    import json

    from ..atomic_write import atomic_write_text

    atomic_write_text(
        osp.join(work_dir, 'summary.json'), json.dumps(summary, indent=1, default=str)
    )
    return summary


def _final(cfg: Mapping[str, Any], final: Mapping[str, Any]) -> Dict[str, Any]:
    """``nas.final`` with its defaults and the schedule the retrain trains (the base
    config's full schedule unless ``nas.final.schedule`` names one)."""
    from .continuation import final_schedule
    from .fidelity import FINAL_DEFAULTS

    out = dict(FINAL_DEFAULTS, **final)
    out['schedule'] = final_schedule(cfg, out)
    return out


def _neighbours(ctrl: SearchController) -> Dict[str, Any]:
    """Each budget's winner's Pareto neighbours (``report.pareto_neighbours``)."""
    from .report import pareto_neighbours

    out: Dict[str, Any] = {}
    for b in ctrl.budgets:
        w = ctrl.best(b)
        out[f'{b:g}'] = None if w is None else pareto_neighbours(ctrl.comparable(w), w, b)
    return out


#: what a trained result depends on besides the architecture: a warm start re-uses an
#: earlier search's trials only where all of these are the same
WARM_START_SAME = (
    ('default_scope', 'task'),
    ('train_dataloader.dataset', 'training data'),
    ('val_dataloader.dataset', 'validation data'),
    ('val_evaluator', 'evaluator'),
    ('train_cfg', 'schedule'),
    ('optim_wrapper', 'optimiser'),
    ('param_scheduler', 'learning-rate schedule'),
    ('model', 'model (besides the backbone)'),
)


@dataclass
class WarmStartPlan:
    """What ``--warm-start OTHER`` adds, decided (and refused) before anything is created."""

    source: str
    trials: List[Tuple[int, Dict[str, Any], float, Dict[str, Any]]]
    skipped: List[str]


def _without_backbone(model: Any) -> Any:
    if not isinstance(model, Mapping):
        return model
    out = {k: v for k, v in model.items() if k != 'backbone'}
    if isinstance(model.get('backbone'), Mapping):
        out['backbone'] = {
            k: v for k, v in model['backbone'].items() if k not in ('arch', 'tier', 'init_cfg')
        }
    if isinstance(model.get('neck'), Mapping):  # the neck's widths follow the arch
        out['neck'] = {k: v for k, v in model['neck'].items() if k != 'in_channels'}
    return out


def _at(cfg: Mapping[str, Any], dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split('.'):
        value = value.get(part) if isinstance(value, Mapping) else None
    return _without_backbone(value) if dotted == 'model' else value


def plan_warm_start(
    cfg: Mapping[str, Any], metric: str, simulate: bool, other: str
) -> WarmStartPlan:
    """The earlier search's results that are valid for this one, and why the rest is not.

    A trial is re-used only from a search of the same task, metric, data, evaluator,
    schedule and detector, and never a ``--simulate`` (surrogate) result in a real search.
    Raises :class:`JournalError` naming ``other`` when its journal cannot be read; nothing
    is created before this runs.
    """
    from .journal import JOURNAL_NAME

    source = osp.abspath(other)
    if not osp.isfile(osp.join(other, JOURNAL_NAME)):
        raise JournalError(
            f'--warm-start {other}: no search journal there ({JOURNAL_NAME}); allowed: the '
            'work_dir of an earlier tools/nas_search.py run'
        )
    try:
        src = SearchJournal.open(other)
    except JournalError as e:
        raise JournalError(f'--warm-start {other}: its journal cannot be used: {e}') from None
    try:
        old = src.config or {}
        done = src.trials(('complete',))
    finally:
        src.close()
    reasons = []
    if old.get('_mode') == 'simulate' and not simulate:
        reasons.append('it is a --simulate run (surrogate metrics, nothing was trained)')
    old_metric = (old.get('nas') or {}).get('metric') or (
        'accuracy/top1' if old.get('default_scope') == 'mmpretrain' else 'coco/bbox_mAP'
    )
    if old_metric != metric:
        reasons.append(f'its metric is {old_metric!r}, this search ranks by {metric!r}')
    if not (simulate and old.get('_mode') == 'simulate'):
        for key, what in WARM_START_SAME:
            if config_diff(_at(old, key), _at(cfg, key)):  # as JSON: tuples are lists
                reasons.append(f'its {what} ({key}) differs')
    if reasons:
        skipped = [f'all {len(done)} trials of {source}: ' + '; '.join(reasons)]
        return WarmStartPlan(source, [], skipped)
    trials, skipped = [], []
    for t in done:
        if t.metric is None or not np.isfinite(t.metric):
            skipped.append(f'trial {t.id}: no finite metric ({t.metric!r})')
            continue
        result = {k: v for k, v in t.result.items() if not k.startswith('_')}
        trials.append((t.id, t.arch, float(t.metric), result))
    return WarmStartPlan(source, trials, skipped)


def _warm_start(ctrl: SearchController, plan: WarmStartPlan) -> None:
    """Re-measure an earlier search's valid trained candidates on this target; no training."""
    n = 0
    for trial_id, arch, metric, result in plan.trials:
        if ctrl.add_warm(f'{plan.source}#{trial_id}', arch, metric, result):
            n += 1
    ctrl.journal.log('warm_start', data=dict(source=plan.source, trials=n, skipped=plan.skipped))
    logger.info('warm start: %d trained candidates from %s', n, plan.source)
    for why in plan.skipped:
        logger.warning('warm start: skipped %s', why)
