"""Turn a NAS run's ``WORK_DIR/results.json`` into hub entries with provenance ``search``.

``tools/nas_search.py`` writes ``results.json`` (``gpunet_mm/search/report.py``)::

    {
      "format": 1,
      "search": {
        "work_dir": "/abs/work_dirs/nas_det",   # where the run lives
        "journal_hash": "3f2a...",             # hash of the trial journal the results come from
        "config": "configs/nas/....py",        # the search config
        "mode": "train",                       # or "simulate" (surrogate metric: not imported
                                               #   unless allow_simulated=True)
        "target": {"backend": "onnxruntime", "device": "cpu", "precision": "fp32",
                   "batch": 1, "threads": 1, "iters": 30, "warmup": 5,
                   "shape": [320, 320],        # optional: else each arch's own resolution
                   "detector": "RetinaNet"},   # the model type (detectors)
        "task": "detection",                   # or "classification"
        "metric_name": "coco/bbox_mAP",        # the evaluator key that `metric` holds
                                               #   ('surrogate_score' for --simulate)
        "dataset": "CocoDataset data/coco/annotations/instances_val2017.json",
        "toy_data": false,                     # true: the demo shapes (rows marked toy-data)
        "machine": {"device": "cpu:AMD EPYC 7B13:1t", "cpu": "AMD EPYC 7B13",
                    "backend": "onnxruntime", "backend_version": "1.32.0",
                    "threads": 1, "clock": "process_cpu"},   # from the latency measurements
        "budgets_ms": [40.0, 60.0]
      },
      "winners": [                             # the best trial under each latency budget
        {"budget_ms": 40.0, "trial_id": 17, "arch_hash": "...",
         "arch": {...GPUNetArch.to_dict()...}, "latency_ms": 37.2, "metric": 0.412,
         "params": 9123456, "checkpoint": ".../trial_17/epoch_12.pth",
         "config": "/abs/work_dirs/nas_det/best_40ms.py", ...}
      ],
      "trials": [ ...the same fields (without budget_ms) for every finished trial... ]
    }

``params``, ``flops``, ``checkpoint`` and ``config`` may be null or absent; ``trial_id``,
``arch``, ``latency_ms`` and ``metric`` are required, and ``arch_hash``, when given, must be
the arch's ``structural_hash()``. Other fields are ignored. The target's ``device`` is
normalised like every hub device (a latency-cache key ``'cpu:AMD EPYC 7B13:2t'`` becomes
``cpu-amd-epyc-7b13``); a bare ``'cpu'`` or ``'cuda'`` says little about the machine, so
the row takes its device from ``search.machine.device`` (the measurements' own device key)
and ``device=`` (``tools/hub.py import --device``) can name it. ``machine`` becomes the
row's provenance environment, ``dataset`` its ``metric_dataset``; a run on the demo data
(``toy_data``) gives rows with the ``toy-data`` caveat, which queries leave out unless asked.

Metrics: mmdet's ``coco/bbox_mAP`` is a fraction (0.412); the hub stores percentages like
OpenMMLab's metafiles (41.2), so metric names that are fractions in mmdet (those ending in
``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75``) are multiplied by 100 when they are at
most 1. mmpretrain's
``accuracy/top1`` already is a percentage.

Entry names are ``<work_dir folder>-trial<id>`` so that importing the same run twice is a
no-op, and the provenance keeps the work_dir, trial id and journal hash (plus the budgets a
winner won), so every search row can be traced back to the trial that produced it.
"""

from __future__ import annotations

import json
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional

from .entry import HubEntry, HubError, Provenance

RESULTS_FILE = 'results.json'
RESULTS_FORMAT = 1
_FRACTION_METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75')
_REQUIRED_TRIAL = ('trial_id', 'arch', 'latency_ms', 'metric')


def load_results(work_dir: str, allow_simulated: bool = False) -> Dict[str, Any]:
    path = osp.join(work_dir, RESULTS_FILE)
    if not osp.isfile(path):
        raise HubError(
            f'no {RESULTS_FILE} in {work_dir} (the search writes it when a run finishes; '
            'is this the work_dir of tools/nas_search.py?)'
        )
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise HubError(f'{path}:{e.lineno}: not valid JSON ({e.msg})') from None
    if not isinstance(data, dict) or data.get('format') != RESULTS_FORMAT:
        got = data.get('format') if isinstance(data, dict) else type(data).__name__
        raise HubError(f'{path}: results format {got!r}; this version reads {RESULTS_FORMAT}')
    from ..schema import ResultsFile, SchemaError, validate

    try:  # every field the import reads, by type (see gpunet_mm.schema.ResultsFile)
        validate(ResultsFile, data, path)
    except SchemaError as e:
        raise HubError(str(e)) from None
    search = data['search']
    if search.get('mode') == 'simulate' and not allow_simulated:
        raise HubError(
            f'{path}: a --simulate run (its metric is a surrogate, not a trained model); '
            'pass allow_simulated=True (--allow-simulated) to import it anyway'
        )
    data['_path'] = path
    return data


def _metric(value: Any, metric_name: str) -> float:
    v = float(value)
    # mmdet reports these as fractions; a surrogate objective (--simulate) may not
    if metric_name.split('/')[-1] in _FRACTION_METRICS and 0.0 <= v <= 1.0:
        v *= 100.0
    return round(v, 4)


def trial_entry(
    data: Mapping[str, Any],
    trial: Mapping[str, Any],
    where: str,
    work_dir: str,
    device: Optional[str] = None,
) -> HubEntry:
    missing = [k for k in _REQUIRED_TRIAL if trial.get(k) is None]
    if missing:
        raise HubError(f'{data["_path"]}: {where} lacks {", ".join(missing)}')
    search = data['search']
    target = search['target']
    task = search['task']
    metric_name = str(search['metric_name'])
    folder = osp.basename(osp.normpath(search.get('work_dir') or work_dir))
    extra: Dict[str, Any] = {'results': data['_path']}
    if trial.get('budget_ms') is not None:
        extra['budget_ms'] = [float(trial['budget_ms'])]
    if search.get('config'):
        extra['search_config'] = search['config']
    short = metric_name.split('/')[-1]
    shape = target.get('shape') or target.get('input_shape')
    if not shape:  # measured at the architecture's own resolution
        res = int(trial['arch'].get('resolution', 224))
        shape = (res, res)
    detector = target.get('detector') if task != 'classification' else None
    if search.get('mode') == 'simulate':
        extra['mode'] = 'simulate'
    machine = dict(search.get('machine') or {})
    # the measurement's own device key ('cpu:AMD EPYC 7B13:1t') names the machine where the
    # target says only 'cpu'; an explicit device= wins
    measured_on = machine.pop('device', None)
    caveats = ['toy-data'] if search.get('toy_data') else []
    metric = trial['metric']
    source = (
        'search (simulated surrogate)'
        if search.get('mode') == 'simulate'
        else 'search (trained with the search schedule)'
    )
    if trial.get('final_metric') is not None:  # nas.final retrained it on the full schedule
        extra['proxy_metric'] = _metric(metric, metric_name)
        metric = trial['final_metric']
        source += ', final retrain on the full schedule; proxy_metric: the search schedule'
    entry = HubEntry(
        name=f'{folder}-trial{trial["trial_id"]}',
        task=task,
        detector=str(detector).lower() if detector else None,
        input_shape=tuple(shape),
        batch=int(target['batch']),
        device=device or measured_on or str(target['device']),
        backend=str(target['backend']),
        backend_version=target.get('backend_version') or machine.get('backend_version'),
        precision=str(target['precision']),
        latency_ms=float(trial['latency_ms']),
        latency_stat=str(target.get('statistic', 'median (search measurement)')),
        metric=_metric(metric, metric_name),
        metric_name='top1' if short in ('top1', 'accuracy_top1') else short,
        metric_dataset=search.get('dataset'),
        metric_schedule=search.get('schedule'),
        metric_source=source,
        params=trial.get('params'),
        flops=trial.get('flops'),
        arch=dict(trial['arch']),
        config=trial.get('config'),
        checkpoint=trial.get('checkpoint'),
        caveats=caveats,
        provenance=Provenance(
            kind='search',
            work_dir=osp.abspath(search.get('work_dir') or work_dir),
            trial_id=trial['trial_id'],
            journal_hash=str(search['journal_hash']),
            environment=machine,
            extra=extra,
        ),
    )
    if trial.get('arch_hash') and trial['arch_hash'] != entry.arch_hash:
        raise HubError(
            f'{data["_path"]}: {where}: arch_hash {trial["arch_hash"]!r} does not match its '
            f'arch (structural hash {entry.arch_hash!r})'
        )
    return entry


def search_entries(
    work_dir: str,
    include_pareto: bool = False,
    device: Optional[str] = None,
    allow_simulated: bool = False,
) -> List[HubEntry]:
    """The winners of a run (and, with ``include_pareto``, every Pareto-optimal trial)."""
    from .ranking import pareto_front

    data = load_results(work_dir, allow_simulated)
    out: List[HubEntry] = []
    seen = set()
    by_key: Dict[str, HubEntry] = {}
    for i, w in enumerate(data['winners']):
        e = trial_entry(data, w, f'winners[{i}]', work_dir, device)
        if e.key in by_key:  # one trial can win several budgets
            budgets = by_key[e.key].provenance.extra.setdefault('budget_ms', [])
            budgets.extend(e.provenance.extra.get('budget_ms', []))
            continue
        by_key[e.key] = e
        seen.add(e.key)
        out.append(e)
    if include_pareto:
        trials = [
            trial_entry(data, t, f'trials[{i}]', work_dir, device)
            for i, t in enumerate(data.get('trials', []))
        ]
        for e in pareto_front(trials):
            if e.key not in seen:
                seen.add(e.key)
                out.append(e)
    return out
