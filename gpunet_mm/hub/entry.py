"""One hub row: a model on a measurement target, with the source of every number.

A row is *a model* (``name``, task, architecture, config, weights) *measured on a target*
(device, backend, precision, batch, input shape), plus its accuracy. The same model appears
once per target and per provenance: GPUNet-0 has a V100 TensorRT row and an A100 TensorRT row
from the paper, and a CPU ONNX Runtime row measured here. :attr:`HubEntry.key` identifies a
row; rows that share a ``name`` must describe the same network (same ``arch_hash``, task and
detector), which is what makes ``get(name)`` and ``get_config(name)`` meaningful.

Provenance says where the *latency* comes from (``paper``: a citation; ``measured``: tool,
date, environment; ``search``: work_dir, trial id, journal hash). Where the accuracy comes from
a different source (a CPU latency measured here next to the paper's top-1) ``metric_source``
says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

TASKS = ('classification', 'detection')
TASK_ALIASES = {
    'classification': 'classification',
    'cls': 'classification',
    'detection': 'detection',
    'det': 'detection',
}
#: the task metric of each task (percent, 0-100)
TASK_METRICS = {'classification': 'top1', 'detection': 'bbox_mAP'}
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
BACKEND_ALIASES = {'pytorch': 'torch', 'trt': 'tensorrt', 'ort': 'onnxruntime'}
#: the fields each provenance kind must carry
PROVENANCE_REQUIRED = {
    'paper': ('source',),
    'measured': ('tool', 'date', 'environment'),
    'search': ('work_dir', 'trial_id', 'journal_hash'),
}


#: why a row must not answer a question unless asked for (``include_toy``), and what the
#: tables print for it. ``simulated``: a surrogate score, no model was trained;
#: ``toy-data``: trained and evaluated on the built-in demo shapes, not a real dataset;
#: ``no-dataset``: a metric that does not say which dataset it was measured on.
CAVEATS = {
    'simulated': 'SIMULATED: a surrogate score, no model was trained',
    'toy-data': 'TOY DATA: trained and evaluated on the demo shapes, not a real dataset',
    'no-dataset': 'NO DATASET: the metric does not name the dataset it was measured on',
}


class HubError(ValueError):
    """Bad input to the hub; the message names the bad value and what is allowed."""


def normalize_task(task: str) -> str:
    key = str(task).strip().lower()
    if key not in TASK_ALIASES:
        raise HubError(f'task: got {task!r}; allowed: {", ".join(sorted(TASK_ALIASES))}')
    return TASK_ALIASES[key]


def normalize_backend(backend: str) -> str:
    key = str(backend).strip().lower()
    return BACKEND_ALIASES.get(key, key)


def normalize_device(name: str) -> str:
    """A short, stable device name: ``'cpu-<model>'`` for CPUs, the GPU family for GPUs.

    ``'AMD EPYC 7B13 64-Core Processor'`` -> ``'cpu-amd-epyc-7b13'``,
    ``'cpu:AMD EPYC:2t'`` (a latency-cache device key) -> ``'cpu-amd-epyc'``,
    ``'NVIDIA A100-SXM4-80GB'`` / ``'cuda:NVIDIA A100-SXM4-80GB:...'`` -> ``'A100'``.
    Names that are already short (``'V100'``, ``'cpu-amd-epyc'``) come back unchanged.
    """
    text = str(name).strip()
    if not text:
        raise HubError('device: got an empty name')
    parts = text.split(':')
    kind = parts[0].lower()
    if kind in ('cpu', 'cuda') and len(parts) >= 2:
        return _cpu_name(parts[1]) if kind == 'cpu' else _gpu_name(parts[1])
    if kind == 'cpu' or text.lower().startswith('cpu-'):
        return text.lower()
    if re.search(r'\b(epyc|xeon|core\(tm\)|ryzen|processor|neoverse|apple m\d)', text, re.I):
        return _cpu_name(text)
    return _gpu_name(text)


def _cpu_name(model: str) -> str:
    s = model.lower()
    s = re.sub(r'\((r|tm)\)', ' ', s)
    s = re.sub(r'@.*$', ' ', s)  # clock speed
    s = re.sub(r'\b\d+-core\b|\bprocessor\b|\bcpu\b', ' ', s)
    s = re.sub(r'[^a-z0-9]+', '-', s).strip('-')
    return f'cpu-{s}' if s else 'cpu'


def _gpu_name(model: str) -> str:
    s = re.sub(r'\b(nvidia|tesla|geforce|quadro)\b', ' ', model, flags=re.I).strip()
    tokens = [t for t in re.split(r'[\s\-_]+', s) if t]
    if not tokens:
        return model.strip()
    if tokens[0].upper() in ('RTX', 'GTX') and len(tokens) > 1:
        return f'{tokens[0].upper()}-{tokens[1].upper()}'
    return tokens[0].upper()


def device_kind(device: str) -> str:
    """``'cpu'`` for ``cpu-<model>`` devices, ``'gpu'`` for the others."""
    d = device.lower()
    return 'cpu' if d == 'cpu' or d.startswith('cpu-') else 'gpu'


def local_devices() -> Dict[str, Optional[str]]:
    """This machine's devices as hub names: ``dict(cpu='cpu-<model>', gpu='<family>' or None)``.

    The GPU is read from torch only where an NVIDIA device node exists, so a query on a
    machine without a GPU does not pay for importing torch.
    """
    import os

    from ..deploy.backends.base import cpu_name

    gpu = None
    if os.path.exists('/dev/nvidiactl') or os.path.exists('/dev/nvidia0'):
        try:
            import torch

            if torch.cuda.is_available():
                gpu = _gpu_name(torch.cuda.get_device_name(0))
        except Exception:  # noqa: BLE001 - no usable GPU: the CPU is the device
            gpu = None
    return dict(cpu=_cpu_name(cpu_name()), gpu=gpu)


def device_matches(query: str, device: str) -> bool:
    """``'cpu'`` matches every ``cpu-*`` device; other names match case-insensitively."""
    q, d = query.strip().lower(), device.lower()
    if q == 'cpu':
        return d == 'cpu' or d.startswith('cpu-')
    return q == d


@dataclass
class Provenance:
    """Where a row's latency comes from (and, for search rows, the trial that produced it)."""

    kind: str
    source: Optional[str] = None
    tool: Optional[str] = None
    date: Optional[str] = None
    environment: Dict[str, Any] = field(default_factory=dict)
    work_dir: Optional[str] = None
    trial_id: Optional[Union[int, str]] = None
    journal_hash: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.kind not in PROVENANCE_REQUIRED:
            raise HubError(
                f'provenance.kind: got {self.kind!r}; allowed: {", ".join(PROVENANCE_REQUIRED)}'
            )
        missing = [k for k in PROVENANCE_REQUIRED[self.kind] if getattr(self, k) in (None, '', {})]
        if missing:
            raise HubError(
                f'provenance {self.kind!r} needs {", ".join(PROVENANCE_REQUIRED[self.kind])}; '
                f'missing: {", ".join(missing)}'
            )

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, '')}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        if not isinstance(d, Mapping):
            raise HubError(f'provenance: got {d!r}; expected a dict with a "kind"')
        _check_keys('provenance', d, cls)
        return cls(**dict(d))

    def summary(self) -> str:
        if self.kind == 'paper':
            return f'paper: {self.source}'
        if self.kind == 'measured':
            return f'measured: {self.tool}, {self.date}'
        return f'search: {self.work_dir} trial {self.trial_id}'


@dataclass
class HubEntry:
    """A model on a measurement target; see the module docstring for the semantics."""

    name: str
    task: str
    input_shape: Tuple[int, int]
    batch: int
    device: str
    backend: str
    precision: str
    latency_ms: float
    latency_stat: str
    provenance: Provenance
    backend_version: Optional[str] = None
    detector: Optional[str] = None
    metric: Optional[float] = None
    metric_name: Optional[str] = None
    metric_dataset: Optional[str] = None
    metric_schedule: Optional[str] = None
    metric_source: Optional[str] = None
    backbone_top1: Optional[float] = None
    params: Optional[int] = None
    flops: Optional[int] = None
    tier: Optional[str] = None
    arch: Optional[Dict[str, Any]] = None
    arch_hash: Optional[str] = None
    config: Optional[str] = None
    checkpoint: Optional[str] = None
    checkpoint_hash: Optional[str] = None
    latency_detail: Dict[str, Any] = field(default_factory=dict)
    notes: Optional[str] = None
    caveats: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.provenance, Mapping):
            self.provenance = Provenance.from_dict(self.provenance)
        self.task = normalize_task(self.task)
        self.backend = normalize_backend(self.backend)
        self.device = normalize_device(self.device)
        self.precision = str(self.precision).lower()
        if isinstance(self.input_shape, (int, float)):
            self.input_shape = (int(self.input_shape), int(self.input_shape))
        self.input_shape = tuple(int(v) for v in self.input_shape)  # type: ignore[assignment]
        if self.metric_name is None and self.metric is not None:
            self.metric_name = TASK_METRICS[self.task]
        if self.arch_hash is None:
            self.arch_hash = self._derived_arch_hash()
        self.caveats = self._derived_caveats()
        self.validate()

    # ------------------------------------------------------------------ checks
    def _derived_arch_hash(self) -> Optional[str]:
        from ..models.arch_spec import GPUNetArch
        from ..models.tiers import get_tier

        if self.arch is not None:
            try:
                return GPUNetArch.from_dict(self.arch).structural_hash()
            except (TypeError, ValueError) as e:
                raise HubError(f'entry {self.name!r}: arch is not a valid GPUNet arch: {e}') from e
        if self.tier is not None:
            try:
                return get_tier(self.tier).structural_hash()
            except ValueError as e:
                raise HubError(f'entry {self.name!r}: {e}') from e
        return None

    def _derived_caveats(self) -> List[str]:
        """The stored caveats plus those the other fields imply (rows written before caveats
        existed get them too): a simulated search, a metric without a dataset."""
        out = set(self.caveats or [])
        if self.provenance.extra.get('mode') == 'simulate' or 'simulated' in str(
            self.metric_source or ''
        ):
            out.add('simulated')
        if self.metric is not None and not self.metric_dataset:
            out.add('no-dataset')
        return sorted(out)

    def validate(self) -> None:
        where = f'entry {self.name!r}'
        bad = [c for c in self.caveats if c not in CAVEATS]
        if bad:
            raise HubError(f'{where}: caveats {bad}; allowed: {", ".join(CAVEATS)}')
        if not isinstance(self.name, str) or not self.name.strip():
            raise HubError(f'entry name: got {self.name!r}; expected a non-empty string')
        if len(self.input_shape) != 2 or min(self.input_shape) <= 0:
            raise HubError(
                f'{where}: input_shape must be (height, width) > 0, got {self.input_shape!r}'
            )
        if int(self.batch) != self.batch or self.batch < 1:
            raise HubError(f'{where}: batch must be an integer >= 1, got {self.batch!r}')
        if self.precision not in PRECISIONS:
            raise HubError(
                f'{where}: precision {self.precision!r}; allowed: {", ".join(PRECISIONS)}'
            )
        lat = self.latency_ms
        if not isinstance(lat, (int, float)) or not math.isfinite(lat) or lat <= 0:
            raise HubError(f'{where}: latency_ms must be a positive number, got {lat!r}')
        for k in ('metric', 'backbone_top1'):
            v = getattr(self, k)
            if v is not None and not (isinstance(v, (int, float)) and 0 <= v <= 100):
                raise HubError(f'{where}: {k} is a percentage (0-100), got {v!r}')
        if self.task == 'detection' and not self.detector:
            raise HubError(f'{where}: a detection entry needs detector (e.g. "retinanet")')
        if not self.latency_stat:
            raise HubError(
                f'{where}: latency_stat must say what the number is (e.g. "median, end to end")'
            )
        self.provenance.validate()

    # ------------------------------------------------------------------ identity
    @property
    def key(self) -> str:
        """Identifies a row: model name (case-insensitive), target and provenance kind."""
        h, w = self.input_shape
        return (
            f'{self.name.lower()}|{self.task}|{self.device}|{self.backend}|{self.precision}|'
            f'bs{self.batch}|{h}x{w}|{self.provenance.kind}'
        )

    @property
    def model_identity(self) -> Tuple[Any, ...]:
        """What must agree between rows sharing a name: task, detector, network."""
        return (self.task, self.detector, self.arch_hash)

    @property
    def target(self) -> str:
        ver = f' {self.backend_version}' if self.backend_version else ''
        return f'{self.device} {self.backend}{ver} {self.precision} bs{self.batch}'

    # ------------------------------------------------------------------ values
    @property
    def machine(self) -> Dict[str, Any]:
        """Which machine the latency was measured on: CPU model, GPU model, backend and its
        version (from the device and the provenance's environment, where recorded)."""
        env = self.provenance.environment or {}
        kind = device_kind(self.device)
        out: Dict[str, Any] = dict(
            cpu=env.get('cpu') or (self.device if kind == 'cpu' else None),
            gpu=env.get('gpu') or (self.device if kind == 'gpu' else None),
            backend=self.backend,
            backend_version=self.backend_version or env.get(self.backend),
        )
        if env.get('threads') is not None:
            out['threads'] = env['threads']
        return {k: v for k, v in out.items() if v is not None}

    @property
    def has_task_metric(self) -> bool:
        return self.metric is not None

    @property
    def score(self) -> Optional[float]:
        """What ``query``/``pareto`` rank by: the task metric, else the backbone's top-1."""
        if self.metric is not None:
            return float(self.metric)
        return None if self.backbone_top1 is None else float(self.backbone_top1)

    @property
    def score_basis(self) -> Optional[str]:
        if self.metric is not None:
            return self.metric_name
        return 'backbone_top1' if self.backbone_top1 is not None else None

    def values(self) -> Dict[str, Any]:
        """Fields that ``--condition`` and ``--sort`` can use (missing ones are None)."""
        is_top1 = self.metric_name == 'top1'
        is_map = self.metric_name is not None and self.metric_name.endswith('bbox_mAP')
        return dict(
            latency_ms=self.latency_ms,
            metric=self.metric,
            top1=self.metric if is_top1 else None,
            bbox_mAP=self.metric if is_map else None,
            mAP=self.metric if is_map else None,
            backbone_top1=self.backbone_top1,
            params=self.params,
            params_m=None if self.params is None else self.params / 1e6,
            flops=self.flops,
            gflops=None if self.flops is None else self.flops / 1e9,
            batch=self.batch,
            height=self.input_shape[0],
            width=self.input_shape[1],
            name=self.name,
            device=self.device,
            backend=self.backend,
            precision=self.precision,
            task=self.task,
        )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == 'provenance':
                v = v.to_dict()
            elif f.name == 'input_shape':
                v = list(v)
            if v is None or (isinstance(v, dict) and not v):
                continue
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HubEntry:
        if not isinstance(d, Mapping):
            raise HubError(f'hub entry: got {type(d).__name__}; expected a JSON object')
        from ..schema import SchemaError, dataclass_model, validate

        try:  # the row's types, by the dataclass's own annotations (nested provenance too)
            validate(dataclass_model(cls), d, f'hub entry {str(d.get("name"))[:60]!r}')
        except SchemaError as e:
            raise HubError(str(e)) from None
        required = [
            f.name
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING and f.name not in d
        ]
        if required:
            raise HubError(f'hub entry {d.get("name")!r}: missing {", ".join(required)}')
        return cls(**dict(d))


def _check_keys(what: str, d: Mapping[str, Any], klass) -> None:
    allowed = [f.name for f in fields(klass)]
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise HubError(f'{what}: unknown keys {unknown}; allowed: {", ".join(allowed)}')
