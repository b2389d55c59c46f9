"""One declarative validation layer for every structure a user hands the package.

Why pydantic v2 in strict mode (rather than typed dataclasses with one validator of our
own): it is already installed (Ray depends on it), it is well kept, and strict mode is
exactly the rule the hand-written checks kept missing in some places: no coercion, so
``norm_eval='False'`` is not a truthy string, ``nas.seed='abc'`` is not parsed, ``True`` is
not the integer 1, a string is not a list of references (``references='GPUNet-0'`` is not
iterated per character), and ``nan``/``inf`` are not numbers unless a field says so.
``extra='forbid'`` on every model, nested ones included, refuses unknown keys at any depth.
A dataclass validator of our own would re-implement exactly that (unions, nested models,
bounds, error locations) and be one more thing to keep.

Every error is a :class:`SchemaError` (a ``ValueError``) whose message names where the
structure came from (a file, ``nas``, ``GPUNet``), the key path inside it, the value, and
what is allowed::

    nas.simulate.duration_sigma: got nan; allowed: a finite number >= 0 and <= 5

The models are the single place a key is declared: :data:`NAS_DEFAULTS` and the search's
``nas_settings`` are derived from :class:`NasSettings`, so a new ``nas`` key is one field
here. Inputs are normalised before validation (tuples become lists, mmengine
``ConfigDict`` becomes ``dict``) because configs spell lists both ways.

Torch-free: the NAS, the hub and the search controller import it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Dict, List, Literal, Optional, Type, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

M = TypeVar('M', bound=BaseModel)

#: strict types, unknown keys refused, defaults validated too
STRICT = ConfigDict(strict=True, extra='forbid', validate_default=True)

# ------------------------------------------------------------------ sane upper bounds
#: architecture bounds (rows of :class:`~gpunet_mm.models.arch_spec.BlockRow`): far above
#: every published or searched network, far below what allocates terabytes or never ends
MAX_CHANNELS = 16384
MAX_KERNEL = 31
MAX_EXPANSION = 64.0
MAX_LAYERS_PER_ROW = 64
MAX_ROWS = 128
MAX_RESOLUTION = 8192
MAX_IN_CHANNELS = 64


class SchemaError(ValueError):
    """A user-supplied structure does not fit its schema; the message lists every problem
    (key path, value, what is allowed) and names the structure's source."""

    def __init__(self, where: str, problems: List[str]) -> None:
        self.where, self.problems = where, problems
        super().__init__('; '.join(problems))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + '...'


def plain(value: Any) -> Any:
    """Tuples as lists and mappings (mmengine ``ConfigDict``) as dicts, recursively."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _unwrap(annotation: Any) -> Any:
    """The model class inside ``Optional[...]`` / ``List[...]`` / ``Dict[str, ...]``."""
    stack = [annotation]
    while stack:
        a = stack.pop()
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
        stack.extend(typing.get_args(a))
    return None


def _field(model: Optional[Type[BaseModel]], loc: tuple) -> Any:
    """The ``FieldInfo`` at ``loc`` (list indices skipped), or None."""
    info = None
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _unwrap(info.annotation)
    return info


def _parent_model(model: Type[BaseModel], loc: tuple) -> Optional[Type[BaseModel]]:
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if model else None
        model = _unwrap(info.annotation) if info else None
    return model


def _message(model: Type[BaseModel], where: str, err: Dict[str, Any]) -> str:
    loc = tuple(p for p in err['loc'] if not _is_union_tag(p))
    path = '.'.join(f'[{p}]' if isinstance(p, int) else str(p) for p in loc).replace('.[', '[')
    # a config key continues the dotted path (nas.seed); a file or row is followed by ': '
    sep = ': ' if (' ' in where or '/' in where or '.json' in where) else '.'
    key = f'{where}{sep}{path}' if path else where
    key = key.replace('.[', '[')
    if err['type'] == 'extra_forbidden':
        parent = _parent_model(model, loc)
        keys = ', '.join(parent.model_fields) if parent else '(none)'
        return f'{key}: unknown key (value {_short(err["input"])}); allowed keys: {keys}'
    if err['type'] == 'missing':
        return f'{key}: missing; required'
    info = _field(model, loc)
    allowed = info.description if info is not None and info.description else None
    if not allowed or err['type'] == 'value_error':
        allowed = str(err['msg'])
        for prefix in ('Value error, ', 'Assertion failed, ', 'Input should be '):
            allowed = allowed.removeprefix(prefix)
    return f'{key}: got {_short(err["input"])}; allowed: {allowed}'


def _is_union_tag(part: Any) -> bool:
    """The member names pydantic puts into the locations of a union's errors."""
    return isinstance(part, str) and (
        part in ('int', 'float', 'str', 'bool', 'list', 'dict', 'none')
        or '[' in part
        or part.startswith(('function-', 'constrained-'))
    )


def _merge(problems: List[str]) -> List[str]:
    """One line per key: a union's members each report the same key."""
    out: Dict[str, List[str]] = {}
    for p in problems:
        head, _, allowed = p.partition('; allowed: ')
        alts = out.setdefault(head, [])
        if allowed and allowed not in alts:
            alts.append(allowed)
    return [f'{h}; allowed: {" or ".join(a)}' if a else h for h, a in out.items()]


def validate(model: Type[M], data: Any, where: str) -> M:
    """``data`` as a ``model`` instance, or :class:`SchemaError` naming ``where``."""
    if not isinstance(data, Mapping):
        raise SchemaError(where, [f'{where}: got {_short(data)}; allowed: a dict'])
    try:
        return model.model_validate(plain(data))
    except ValidationError as e:
        problems = _merge([_message(model, where, err) for err in e.errors(include_url=False)])
        raise SchemaError(where, problems) from None


def defaults(model: Type[BaseModel]) -> Dict[str, Any]:
    """The model's defaults as a plain dict (what ``NAS_DEFAULTS`` used to spell out);
    a required field (no default) is None."""
    out: Dict[str, Any] = {}
    for k, f in model.model_fields.items():
        v = None if f.is_required() else f.get_default(call_default_factory=True)
        out[k] = v.model_dump() if isinstance(v, BaseModel) else copy.deepcopy(v)
    return out


# ------------------------------------------------------------------ shared field types
def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError('a finite number')
    return v


PosInt = Annotated[int, Field(ge=1, le=10**9, description='an integer >= 1')]
NonNegInt = Annotated[int, Field(ge=0, le=10**9, description='an integer >= 0')]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, description='a finite number > 0')]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False, description='a finite number >= 0')]
Name = Annotated[str, Field(min_length=1, max_length=200, description='a non-empty string')]


def _budget(v: Any) -> Union[float, str]:
    """A budget: milliseconds, or ``'TIER'`` / ``'FACTOR*TIER'``; parsed by the search."""
    import re

    allowed = "a positive number of ms, or 'TIER' / 'FACTOR*TIER' (e.g. '1.2*GPUNet-0')"
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(allowed)
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            m = re.match(r'^\s*(?:([0-9]*\.?[0-9]+)\s*\*\s*)?[A-Za-z][\w-]*\s*$', v)
            if not m or (m.group(1) is not None and not float(m.group(1)) > 0):
                raise ValueError(allowed) from None
            return v
    if not math.isfinite(v) or v <= 0:
        raise ValueError(allowed)
    return float(v)


Budget = Annotated[Any, AfterValidator(_budget)]


# ------------------------------------------------------------------ the search: nas
class SimulateSettings(BaseModel):
    """``nas.simulate``: the virtual-clock run of ``--simulate``."""

    model_config = STRICT
    budgets: Annotated[List[Budget], Field(min_length=1, max_length=64)] = [1.0, 1.5, 2.0]
    mean_trial_s: Annotated[
        float, Field(gt=0, le=1e7, allow_inf_nan=False, description='seconds, > 0 and <= 1e7')
    ] = 60.0
    duration_sigma: Annotated[
        float,
        Field(ge=0, le=5, allow_inf_nan=False, description='a finite number >= 0 and <= 5'),
    ] = 0.3
    failure_rate: Annotated[
        float, Field(ge=0, lt=1, allow_inf_nan=False, description='a fraction in [0, 1)')
    ] = 0.0
    num_workers: Annotated[int, Field(ge=1, le=100_000, description='1 to 100000')] = 64
    #: virtual seconds charged per controller step; None: the controller's real time (a run
    #: then depends on the host's load); a number makes a run a function of its seed alone
    controller_s: Optional[
        Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False, description='seconds >= 0')]
    ] = Field(None, description='None (real time) or virtual seconds >= 0 per controller step')
    #: a learning-curve function ``(arch, epochs, seed) -> metric``; None: the surrogate.
    #: Its form is checked here; that it imports and takes those arguments, by
    #: gpunet_mm.search.fidelity.load_objective
    objective: Optional[
        Annotated[str, Field(pattern=r'^[A-Za-z_][\w.]*:[A-Za-z_]\w*$', max_length=500)]
    ] = Field(None, description="'package.module:function' (function(arch, epochs, seed)), or None")


class TrialResources(BaseModel):
    """``nas.resources``: what Ray reserves per trial."""

    model_config = STRICT
    num_cpus: Annotated[
        float, Field(ge=0, le=4096, allow_inf_nan=False, description='a number of CPUs >= 0')
    ] = 1
    num_gpus: Annotated[
        float, Field(ge=0, le=1024, allow_inf_nan=False, description='a number of GPUs >= 0')
    ] = 0


class FidelitySettings(BaseModel):
    """``nas.fidelity``: the rungs of a multi-fidelity search (issue 17). The checks that
    need the base config (the full schedule is known and leaves more than one rung, the
    loop can resume at a rung) are in :mod:`gpunet_mm.search.fidelity`."""

    model_config = STRICT
    #: epochs of the first rung (required: there is no sensible default)
    min_epochs: Annotated[
        int, Field(ge=1, le=100_000, description='integers >= 1 (epochs of the first rung)')
    ]
    #: promote the best 1/eta of a rung; rungs grow by eta
    eta: Annotated[int, Field(ge=2, le=1000, description='integers >= 2')] = 3
    #: the full proxy schedule (default: the base config's train_cfg.max_epochs)
    max_epochs: Optional[Annotated[int, Field(ge=1, le=100_000)]] = Field(
        None, description='None or integers >= 1 (epochs)'
    )
    #: results a rung needs before the optimisers learn from it
    min_observations: Annotated[int, Field(ge=1, le=100_000, description='integers >= 1')] = 6
    #: what the optimisers model: 'rung' (BOHB: only the points of that rung), 'offset'
    #: (also the points that stopped lower, shifted by the median gain between the rungs) or
    #: 'joint' (every point at the top rung, predicted by one model of every rung's results
    #: that takes the rung as an input; gpunet_mm.search.fidelity.joint_values). 'joint' is
    #: the default: at equal compute it led 'rung' in all 6 settings of
    #: benchmarks/benchmark_multifidelity.py (docs/search_measurements.md)
    model: Literal['rung', 'offset', 'joint'] = 'joint'
    #: the final stretch of nas.compute_budget (issue 17a): once what is left cannot take a
    #: new candidate to the top rung, start nothing new and promote below the top instead
    final_stretch: bool = True
    #: how a rung ranks its candidates for promotion: 'rung' (ASHA: by the rung's metric),
    #: 'predicted' (by the value they are predicted to reach higher up, learnt from the
    #: candidates that climbed; gpunet_mm.search.fidelity.predicted_values) or 'joint' (by
    #: the joint model's value at the top rung, the fit the optimisers' values come from;
    #: needs model='joint'; gpunet_mm.search.fidelity.joint_values)
    promote: Literal['rung', 'predicted', 'joint'] = 'rung'
    #: the rung a new candidate starts at, per latency budget: 'asha' (always the first),
    #: 'hyperband' (Hyperband's brackets: a fixed share starts higher up, a hedge against
    #: a first rung that misranks) or 'adaptive' (Hyperband's shares weighted by how well
    #: each rung has ranked the top rung so far, as Hyper-Tune does; a rung that misranks
    #: stops being an entry point); gpunet_mm.search.fidelity.Rungs.start_rung
    brackets: Literal['asha', 'hyperband', 'adaptive'] = 'asha'
    #: BOHB's random fraction: the share of LA-MCTS-BO's model-based proposals drawn
    #: uniformly from the space (repaired onto the budget) instead of from its model, which
    #: a multi-fidelity search fits to a short rung's noisy values (LaMCTSBO's
    #: ``random_fraction``; docs/search_measurements.md has the measurement behind the default)
    random_fraction: Annotated[
        float, Field(ge=0, le=1, allow_inf_nan=False, description='a number in [0, 1]')
    ] = 1 / 3


class FinalSettings(BaseModel):
    """``nas.final``: retrain the top-k candidates per budget in full after the search."""

    model_config = STRICT
    top_k: Annotated[int, Field(ge=1, le=10_000, description='integers >= 1')] = 2
    #: config overrides merged into the candidate's config for the final retrain, e.g.
    #: ``dict(train_cfg=dict(max_epochs=12))``; None: the base detector config's full schedule
    #: (``continuation.base_schedule``), recorded when the search config is loaded
    schedule: Optional[Dict[str, Any]] = Field(
        None,
        description='None or a dict of config overrides (e.g. dict(train_cfg=dict(max_epochs=12)))',
    )


class InheritSettings(BaseModel):
    """``nas.inherit``: a new candidate starts from the weights of the closest candidate that
    finished a rung (``gpunet_mm.search.inherit``); off by default, because the fidelity study
    found that inherited rungs rank the parents more than the children (docs/search_fidelity.md)."""

    model_config = STRICT
    #: the rung a parent must have finished (its checkpoint of that rung is inherited); -1:
    #: the top rung (without rungs: a candidate that finished the proxy schedule)
    parent_rung: Annotated[
        int, Field(ge=-1000, le=1000, description='a rung index; -1: the top')
    ] = -1
    #: least share of the new backbone's weight elements the parent must give, else scratch
    min_fraction: Annotated[
        float, Field(ge=0, le=1, allow_inf_nan=False, description='a share in [0, 1]')
    ] = 0.0


class NasSettings(BaseModel):
    """The ``nas`` dict of a search config (docs/distributed_search.md has every key's meaning)."""

    model_config = STRICT
    #: default: coco/bbox_mAP (mmdet) or accuracy/top1 (mmpretrain)
    metric: Optional[
        Annotated[str, Field(min_length=1, description="an evaluator key, e.g. 'coco/bbox_mAP'")]
    ] = None
    budgets: Optional[Annotated[List[Budget], Field(min_length=1, max_length=64)]] = None
    num_trials: Annotated[int, Field(ge=1, le=1_000_000, description='an integer >= 1')] = 20
    num_workers: Annotated[int, Field(ge=1, le=100_000, description='an integer >= 1')] = 1
    seed: Annotated[int, Field(ge=0, lt=2**32, description='an integer in [0, 2**32)')] = 0
    max_attempts: Annotated[int, Field(ge=1, le=100, description='1 to 100')] = 2
    #: stop the search when this many distinct candidates in a row fail with the same error
    #: and none succeeds between (the cause is the setup, not the candidates); None: off
    max_consecutive_failures: Optional[
        Annotated[int, Field(ge=1, le=10_000, description='None or an integer >= 1')]
    ] = 3
    trial_timeout_s: Optional[PosFloat] = None
    lease_s: PosFloat = 600.0
    propose_ahead: Annotated[int, Field(ge=0, le=10_000, description='0 to 10000')] = 0
    ask_batch: Annotated[int, Field(ge=1, le=10_000, description='1 to 10000')] = 8
    #: propose once this many are missing from the look-ahead (bigger asks)
    ask_min: Annotated[int, Field(ge=1, le=10_000, description='1 to 10000')] = 1
    references: Annotated[
        List[Name],
        Field(max_length=64, description="a list of tier names, e.g. ['GPUNet-0']"),
    ] = ['GPUNet-0']
    resources: TrialResources = TrialResources()
    threads: Optional[Annotated[int, Field(ge=1, le=1024, description='1 to 1024')]] = None
    calibration_samples: Annotated[int, Field(ge=0, le=1000, description='0 to 1000')] = 2
    #: >1: each trial trains on that many processes (torchrun)
    nproc_per_trial: Annotated[int, Field(ge=1, le=1024, description='1 to 1024')] = 1
    # multi-fidelity (issue 17); what needs the base config is checked in
    # gpunet_mm.search.fidelity.check_settings
    #: rungs; None: every candidate trains the full proxy schedule
    fidelity: Optional[FidelitySettings] = Field(
        None, description='None or dict(min_epochs=1, eta=3, max_epochs=None, ...)'
    )
    #: epochs over every attempt, then nothing new starts
    compute_budget: Optional[  # an int stays an int (it is reported as given)
        Union[
            Annotated[int, Field(gt=0, le=10**9)],
            Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)],
        ]
    ] = Field(None, description='None or a positive number of epochs')
    #: retrain the top-k per budget in full; None: no final retrain
    final: Optional[FinalSettings] = Field(None, description='None or dict(top_k=2, schedule=None)')
    #: weight inheritance for new candidates; None: every candidate starts from scratch
    inherit: Optional[InheritSettings] = Field(
        None, description='None or dict(parent_rung=-1, min_fraction=0.0)'
    )
    simulate: SimulateSettings = SimulateSettings()


def _registered_backend(name: str) -> str:
    """A name in the ``LATENCY_BACKENDS`` registry (the one list of backend names, which a
    plugin extends by registering a class). Read when a value is validated, not when this
    module is imported: the backends' modules import numpy and torch, and the schema stays
    torch-free to import (the NAS and the hub import it)."""
    from .deploy.backends import LATENCY_BACKENDS, allowed_backends

    if name not in LATENCY_BACKENDS.module_dict:
        raise ValueError(allowed_backends())
    return name


class LatencyTargetSettings(BaseModel):
    """``latency_target``: the device a search (or a measurement) times on.

    Cross-field rules (a CPU clock only on CPU targets, backends installed here) stay with
    :class:`~gpunet_mm.deploy.LatencyTarget`, which checks them when it is built.
    """

    model_config = STRICT
    backend: Annotated[Name, AfterValidator(_registered_backend)] = 'onnxruntime'
    device: Literal['cpu', 'cuda'] = 'cpu'
    precision: Literal['fp32', 'fp16', 'bf16', 'int8'] = 'fp32'
    batch: Annotated[int, Field(ge=1, le=4096, description='1 to 4096')] = 1
    threads: Optional[Annotated[int, Field(ge=1, le=1024, description='1 to 1024')]] = None
    iters: Annotated[int, Field(ge=1, le=100_000, description='1 to 100000')] = 20
    warmup: Annotated[int, Field(ge=0, le=100_000, description='0 to 100000')] = 5
    shape: Optional[
        Annotated[
            List[Annotated[int, Field(ge=1, le=MAX_RESOLUTION)]],
            Field(min_length=2, max_length=2, description=f'[H, W], 1 to {MAX_RESOLUTION}'),
        ]
    ] = None
    post_processing: Optional[Dict[str, Any]] = None
    score_fraction: Annotated[
        float, Field(ge=0, lt=1, allow_inf_nan=False, description='a fraction in [0, 1)')
    ] = 0.002
    clock: Literal['wall', 'cpu'] = 'wall'
    exclusive: bool = False
    rounds: Annotated[int, Field(ge=1, le=100, description='1 to 100')] = 1
    anchor: Optional[Name] = None
    resources: Optional[Dict[str, Any]] = None
    cache: Optional[Name] = None


class SearchSpaceSettings(BaseModel):
    """``search_space`` / ``search_optimizer``: a registered ``type`` plus its own keyword
    arguments (which the space or optimiser checks when it is built)."""

    model_config = ConfigDict(strict=True, extra='allow')
    type: Name


class RefitSettings(BaseModel):
    """``predictor.refit``: how the pruning predictor learns the target from the search's
    measurements (:class:`~gpunet_mm.deploy.refit.RefitPredictor`'s arguments)."""

    model_config = STRICT
    models: Annotated[
        List[Literal['anchor', 'features']],
        Field(min_length=1, description="a non-empty list of 'anchor' and 'features'"),
    ] = ['anchor', 'features']
    halflife: Optional[
        Annotated[float, Field(gt=0, allow_inf_nan=False, description='None or a number > 0')]
    ] = None
    rescale: Optional[
        Annotated[int, Field(ge=1, le=1000, description='None or an integer 1 to 1000')]
    ] = None


class PredictorSettings(BaseModel):
    """``predictor``: an optional fitted latency-predictor JSON for pruning (the prior the
    search re-anchors on its target), and how it is refitted from the measurements."""

    model_config = STRICT
    path: Optional[Name] = None
    refit: Optional[RefitSettings] = None


# ------------------------------------------------------------------ the backbone
class GPUNetArgs(BaseModel):
    """The plain-typed arguments of :class:`~gpunet_mm.models.backbones.GPUNet` (the arch
    itself, ``out_indices`` and the layer configs have their own checks there)."""

    model_config = ConfigDict(strict=True, extra='ignore')
    frozen_stages: Annotated[int, Field(ge=-1, le=64, description='an integer >= -1')] = 0
    padding: Literal['symmetric', 'release'] = 'symmetric'
    drop_path_rate: Annotated[
        float, Field(ge=0, lt=1, allow_inf_nan=False, description='a number in [0, 1)')
    ] = 0.0
    norm_eval: Annotated[bool, Field(description='True or False (a bool, not a string)')] = False
    with_cp: Annotated[bool, Field(description='True or False (a bool, not a string)')] = False
    with_tail: Optional[
        Annotated[bool, Field(description='None, True or False (a bool, not a string)')]
    ] = None


# ------------------------------------------------------------------ files
class LatencyRow(BaseModel):
    """One latency-cache result (``LatencyResult.to_dict()``): what the search reads back."""

    model_config = ConfigDict(strict=True, extra='allow')
    median_ms: Annotated[
        float, Field(gt=0, allow_inf_nan=False, description='a finite number of ms > 0')
    ]
    p90_ms: Optional[NonNegFloat] = None
    mean_ms: Optional[NonNegFloat] = None
    backend: Optional[str] = None
    precision: Optional[str] = None
    batch: Optional[PosInt] = None
    shape: Optional[Annotated[List[PosInt], Field(min_length=2, max_length=2)]] = None
    env: Optional[Dict[str, Any]] = None


class PredictorFile(BaseModel):
    """A latency-predictor JSON (``LatencyPredictor.save``)."""

    model_config = ConfigDict(strict=True, extra='allow')
    coef: Union[
        Annotated[List[NonNegFloat], Field(min_length=1, max_length=4096)],
        Dict[str, NonNegFloat],
    ] = Field(description='a list of finite numbers >= 0 (with features), or {feature: weight}')
    features: Optional[List[Name]] = None
    target: Optional[Dict[str, Any]] = None
    template: Optional[Any] = None
    fit_stats: Optional[Dict[str, Any]] = None
    channel_block: Annotated[int, Field(ge=1, le=4096, description='1 to 4096')] = 1


class ResultsTarget(BaseModel):
    model_config = ConfigDict(strict=True, extra='allow')
    backend: Name
    device: Name
    precision: Name
    batch: PosInt
    shape: Optional[Annotated[List[PosInt], Field(min_length=2, max_length=2)]] = None
    detector: Optional[str] = None


class ResultsSearch(BaseModel):
    model_config = ConfigDict(strict=True, extra='allow')
    task: Literal['classification', 'detection', 'cls', 'det']
    metric_name: Name
    target: ResultsTarget
    journal_hash: Name
    mode: Literal['train', 'simulate'] = 'train'
    work_dir: Optional[str] = None
    config: Optional[str] = None
    dataset: Optional[str] = None
    schedule: Optional[str] = None


class ResultsTrial(BaseModel):
    model_config = ConfigDict(strict=True, extra='allow')
    trial_id: Union[int, str]
    arch: Dict[str, Any]
    latency_ms: PosFloat
    metric: Annotated[float, Field(allow_inf_nan=False, description='a finite number')]
    budget_ms: Optional[PosFloat] = None
    arch_hash: Optional[str] = None
    params: Optional[NonNegInt] = None
    flops: Optional[NonNegInt] = None
    checkpoint: Optional[str] = None
    config: Optional[str] = None


class ResultsFile(BaseModel):
    """A search's ``results.json``, as ``tools/hub.py import`` reads it."""

    model_config = ConfigDict(strict=True, extra='allow')
    format: Literal[1]
    search: ResultsSearch
    winners: List[ResultsTrial]
    trials: List[ResultsTrial] = []


_DATACLASS_MODELS: Dict[type, Type[BaseModel]] = {}


def dataclass_model(cls: type) -> Type[BaseModel]:
    """A strict model of a dataclass's annotated fields (nested dataclasses as dicts), so a
    row type such as :class:`~gpunet_mm.hub.HubEntry` is its own schema: a field added to
    the dataclass is validated without a second declaration."""
    found = _DATACLASS_MODELS.get(cls)
    if found is not None:
        return found
    hints = typing.get_type_hints(cls)
    spec: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            hint = Union[dataclass_model(hint), None]
        elif typing.get_origin(hint) is tuple:  # JSON and configs spell tuples as lists
            hint = List[Union[typing.get_args(hint)]]  # type: ignore[misc]
        elif typing.get_origin(hint) is Union:
            args = [
                List[Any] if typing.get_origin(a) is tuple else a for a in typing.get_args(hint)
            ]
            hint = Union[tuple(args)]  # type: ignore[misc]
        if hint is float or hint == Optional[float]:
            hint = Annotated[hint, Field(allow_inf_nan=False)]
        if f.default is not dataclasses.MISSING:
            spec[f.name] = (hint, f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            spec[f.name] = (hint, Field(default_factory=f.default_factory))
        else:
            spec[f.name] = (hint, ...)
    model = create_model(
        f'{cls.__name__}Schema', __config__=ConfigDict(strict=True, extra='forbid'), **spec
    )
    _DATACLASS_MODELS[cls] = model
    return model


_SIGNATURE_MODELS: Dict[Any, Type[BaseModel]] = {}


def signature_model(cls: type) -> Type[BaseModel]:
    """A strict model of ``cls.__init__``'s keyword arguments, from its own annotations: the
    class's signature is its config schema (unknown keys refused, ``'4'`` is not an int, a
    string is not a list of resolutions). Every field is optional here: required run-time
    arguments (``space``, ``constraint_fn``) are the class's own business."""
    import inspect

    found = _SIGNATURE_MODELS.get(cls)
    if found is not None:
        return found
    init = cls.__init__
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation that does not resolve here: check names only
        hints = {}
    spec: Dict[str, Any] = {}
    extra = 'forbid'
    for name, p in list(inspect.signature(init).parameters.items())[1:]:
        if p.kind is p.VAR_KEYWORD:
            extra = 'allow'
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        default = None if p.default is p.empty else p.default
        hint = hints.get(name, Any)
        spec[name] = (Optional[hint] if _plain_types_only(hint) else Any, default)
    model = create_model(
        f'{cls.__name__}Arguments',
        __config__=ConfigDict(strict=True, extra=extra, arbitrary_types_allowed=True),
        **spec,
    )
    _SIGNATURE_MODELS[cls] = model
    return model


_PLAIN = (int, float, str, bool, list, dict, tuple, type(None))


def _plain_types_only(hint: Any) -> bool:
    """Whether a hint is built from plain config types only (a class such as ``Dim`` that
    the constructor also accepts as a dict, or a callable, is the class's own check)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is None:
        return hint in _PLAIN
    if origin is typing.Literal:
        return True
    import collections.abc as abc

    if origin not in (Union, types.UnionType, list, dict, tuple, abc.Sequence, abc.Mapping):
        return False
    return all(a is Ellipsis or _plain_types_only(a) for a in typing.get_args(hint))


def check_arguments(cls: type, kwargs: Mapping[str, Any], where: str) -> None:
    """:func:`validate` ``kwargs`` against ``cls``'s signature (see :func:`signature_model`)."""
    validate(signature_model(cls), kwargs, where)


__all__ = [
    'check_arguments',
    'GPUNetArgs',
    'LatencyRow',
    'LatencyTargetSettings',
    'NasSettings',
    'PredictorFile',
    'PredictorSettings',
    'RefitSettings',
    'ResultsFile',
    'SchemaError',
    'SearchSpaceSettings',
    'SimulateSettings',
    'TrialResources',
    'FidelitySettings',
    'FinalSettings',
    'dataclass_model',
    'defaults',
    'plain',
    'signature_model',
    'validate',
]
