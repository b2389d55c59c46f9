"""The GPUNet search space: the paper's stage table as data and :class:`GPUNetSpace`.

The table (the paper's classification space) is :data:`CLASSIFICATION_STAGES`;
:class:`GPUNetSpace` decodes points into :class:`~gpunet_mm.models.arch_spec.GPUNetArch`,
the format shared with the hub tiers.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from gpunet_mm.models.arch_spec import BlockRow, GPUNetArch

from ..registry import NAS_SPACES
from .base import ArrayLike
from .discrete import Dim, DiscreteSpace


@dataclass(frozen=True)
class StageSpec:
    """One row of the paper's stage table; ``(min, max, step)`` ranges become choice lists.

    ``expansions``/``se`` are empty for plain conv stages. A stage whose ``layers`` range
    includes 0 may be dropped by the search (its other choices are then inactive).
    """

    stage: int
    block: str
    stride: int
    layers: Tuple[int, int]
    filters: Tuple[int, int, int]
    kernels: Tuple[int, ...] = (3, 5)
    expansions: Tuple[int, ...] = (2, 3, 4, 5, 6)
    acts: Tuple[str, ...] = ('relu', 'swish')
    se: Tuple[bool, ...] = (False, True)

    def __post_init__(self) -> None:
        where = f'stage {self.stage}'
        if self.block not in ('conv', 'fused', 'irb'):
            raise ValueError(f'{where} block: got {self.block!r}; allowed: conv, fused, irb')
        if self.stride not in (1, 2):
            raise ValueError(f'{where} stride: got {self.stride!r}; allowed: 1, 2')
        lo, hi = self.layers
        if lo < 0 or lo > hi:
            raise ValueError(f'{where} layers: got [{lo}, {hi}]; allowed: 0 <= min <= max')
        fmin, fmax, fstep = self.filters
        if fmin <= 0 or fstep <= 0 or fmin > fmax:
            raise ValueError(
                f'{where} filters: got [{fmin}, {fmax}, {fstep}]; allowed: 0 < min <= max, step > 0'
            )
        for name in ('kernels', 'acts'):
            if not getattr(self, name):
                raise ValueError(f'{where} {name}: empty; allowed: at least one choice')
        if self.block != 'conv' and (not self.expansions or not self.se):
            raise ValueError(f'{where}: {self.block} stages need expansions and se choices')
        if self.block == 'conv' and any(self.se):
            raise ValueError(f"{where} se: got {list(self.se)}; allowed: (False,) for 'conv'")

    @property
    def layer_choices(self) -> Tuple[int, ...]:
        return tuple(range(self.layers[0], self.layers[1] + 1))

    @property
    def filter_choices(self) -> Tuple[int, ...]:
        fmin, fmax, fstep = self.filters
        return tuple(range(fmin, fmax + 1, fstep))


def _stage(stage, block, stride, layers, filters, **kw) -> StageSpec:
    if block == 'conv':
        kw.setdefault('expansions', ())
        kw.setdefault('se', (False,))
    return StageSpec(stage, block, stride, tuple(layers), tuple(filters), **kw)


#: The paper's classification space (GPUNet, CVPR 2022, table of stages 0-8).
#: Stage 8 (conv1x1 1792 + pool + fc) is fixed and lives in ``TAIL_CHANNELS``.
CLASSIFICATION_STAGES: Tuple[StageSpec, ...] = (
    _stage(0, 'conv', 2, (1, 1), (24, 32, 8)),
    _stage(1, 'conv', 1, (1, 4), (24, 32, 8)),
    _stage(2, 'fused', 2, (1, 8), (32, 80, 16)),
    _stage(3, 'fused', 2, (1, 8), (48, 112, 16)),
    _stage(4, 'irb', 2, (1, 10), (96, 192, 16)),
    _stage(5, 'irb', 1, (0, 15), (112, 224, 16)),
    _stage(6, 'irb', 2, (1, 15), (128, 416, 32)),
    _stage(7, 'irb', 1, (0, 15), (256, 832, 64)),
)
TAIL_CHANNELS = 1792
#: input resolution 224..512 step 32 (classification)
CLASSIFICATION_RESOLUTIONS: Tuple[int, ...] = tuple(range(224, 513, 32))
#: default detection input sizes (the neck/head come from the base detector config)
DETECTION_RESOLUTIONS: Tuple[int, ...] = (320, 384, 448, 512)
VARIANTS = ('classification', 'detection')
_STAGE_FIELDS = set(StageSpec.__dataclass_fields__)


def _smallest_choices(s: StageSpec, prefix: str) -> Dict[str, Any]:
    """A stage's choices other than its layer count at their first (smallest) value: what
    an empty stage is encoded with (the choices are inactive, so any value would do)."""
    return {
        prefix + 'filters': s.filter_choices[0],
        prefix + 'kernel': s.kernels[0],
        prefix + 'expansion': (s.expansions or (1,))[0],
        prefix + 'act': s.acts[0],
        prefix + 'se': bool(s.se[0]),
    }


@NAS_SPACES.register_module()
class GPUNetSpace(DiscreteSpace):
    """The GPUNet search space; points decode to validated :class:`GPUNetArch` objects.

    Build from a config: ``dict(type='GPUNetSpace', variant='detection',
    resolutions=[320, 384])``; ``stages=[dict(stage=7, layers=(0, 4))]`` overrides table
    rows by stage number. Per stage the dims are ``s{i}.layers``, ``s{i}.filters``,
    ``s{i}.kernel``, ``s{i}.expansion``, ``s{i}.act``, ``s{i}.se`` (only those with more
    than one choice), then ``resolution``.
    """

    type_name = 'GPUNetSpace'

    def __init__(
        self,
        variant: str = 'classification',
        resolutions: Optional[Sequence[int]] = None,
        stages: Optional[Sequence[Union[StageSpec, Mapping[str, Any]]]] = None,
        tail_channels: int = TAIL_CHANNELS,
        name_prefix: str = 'gpunet-nas',
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(
                f'GPUNetSpace variant: got {variant!r}; allowed: {", ".join(VARIANTS)}'
            )
        self.variant = variant
        if resolutions is None:
            resolutions = (
                CLASSIFICATION_RESOLUTIONS if variant == 'classification' else DETECTION_RESOLUTIONS
            )
        resolutions = tuple(int(r) for r in resolutions)
        if not resolutions or any(r <= 0 for r in resolutions):
            raise ValueError(
                f'GPUNetSpace resolutions: got {list(resolutions)}; allowed: a non-empty '
                'list of positive integers'
            )
        self.resolutions = tuple(sorted(set(resolutions)))
        self.stages = self._merge_stages(stages)
        # validate every choice now (the backbone's rules), not at the first ask(): a stem
        # that may vanish or an even kernel would otherwise surface mid-search
        if self.stages[0].layers[0] < 1:
            raise ValueError(
                f'stage {self.stages[0].stage} layers: got {list(self.stages[0].layers)}; '
                'allowed: min >= 1 (the first stage is the stride-2 stem every arch needs)'
            )
        for s in self.stages:
            for field_name, arg, values in (
                ('kernels', 'kernel', s.kernels),
                ('filters', 'out_channels', s.filter_choices),
                ('expansions', 'expansion', s.expansions or (1,)),
                ('acts', 'act', s.acts),
                ('se', 'se', [bool(v) if v in (0, 1) else v for v in s.se]),
            ):
                for v in values:
                    kw = dict(type=s.block, kernel=3, out_channels=8, stride=s.stride, stage=0)
                    try:
                        BlockRow(**{**kw, arg: v}).validate()
                        if arg == 'expansion' and v != int(v):  # decode() casts to int
                            raise ValueError(f'got {v!r}; allowed: integer expansion ratios')
                    except (ValueError, TypeError) as e:
                        raise ValueError(f'GPUNetSpace stage {s.stage} {field_name}: {e}') from e
        if isinstance(tail_channels, bool) or int(tail_channels) <= 0:
            raise ValueError(f'tail_channels: got {tail_channels!r}; allowed: integers > 0')
        self.tail_channels = int(tail_channels)
        self.name_prefix = name_prefix
        self._stage_overrides = [asdict(s) for s in self.stages]

        dims: List[Dim] = []
        self._fixed: Dict[str, Any] = {}
        for s in self.stages:
            p = f's{s.stage}.'
            for name, choices, ordinal in (
                ('layers', s.layer_choices, True),
                ('filters', s.filter_choices, True),
                ('kernel', tuple(s.kernels), True),
                ('expansion', tuple(s.expansions) or (1,), True),
                ('act', tuple(s.acts), False),
                ('se', tuple(bool(v) for v in s.se), False),
            ):
                if len(choices) > 1:
                    dims.append(Dim(p + name, choices, ordinal))
                else:
                    self._fixed[p + name] = choices[0]
        if len(self.resolutions) > 1:
            dims.append(Dim('resolution', self.resolutions, True))
        else:
            self._fixed['resolution'] = self.resolutions[0]
        super().__init__(dims)
        # dims disabled when a stage has 0 layers (for canonical keys)
        self._inactive: List[Tuple[int, List[int]]] = []
        for s in self.stages:
            if s.layers[0] == 0:
                li = self._index[f's{s.stage}.layers']
                others = [
                    self._index[k]
                    for k in self._index
                    if k.startswith(f's{s.stage}.') and not k.endswith('.layers')
                ]
                self._inactive.append((li, others))

    @staticmethod
    def _merge_stages(stages) -> Tuple[StageSpec, ...]:
        base = {s.stage: s for s in CLASSIFICATION_STAGES}
        if stages is None:
            return tuple(base.values())
        out = dict(base)
        for s in stages:
            if isinstance(s, StageSpec):
                out[s.stage] = s
                continue
            s = dict(s)
            if 'stage' not in s:
                raise ValueError(f'stage override {s!r} has no "stage" key')
            unknown = set(s) - _STAGE_FIELDS
            if unknown:
                raise ValueError(
                    f'stage override keys: got {sorted(unknown)}; allowed: {sorted(_STAGE_FIELDS)}'
                )
            old = asdict(out[s['stage']]) if s['stage'] in out else {}
            merged = {**old, **s}
            for k, v in merged.items():
                if isinstance(v, list):
                    merged[k] = tuple(v)
            out[s['stage']] = StageSpec(**merged)
        if 0 not in out or out[0].stride != 2:
            raise ValueError('stage 0 must exist and be the stride-2 stem')
        return tuple(out[k] for k in sorted(out))

    def canonical(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=float)
        squeeze = X.ndim == 1
        X = np.atleast_2d(X)
        for li, others in self._inactive:
            off = X[:, li] == 0  # index 0 is "0 layers" when the range starts at 0
            if others and off.any():
                X[np.ix_(off, others)] = 0.0
        return X[0] if squeeze else X

    def _canonical_row(self, vals: List[float]) -> None:
        for li, others in self._inactive:
            if vals[li] == 0:
                for o in others:
                    vals[o] = 0.0

    def _value(self, vals: Mapping[str, Any], name: str) -> Any:
        return vals[name] if name in vals else self._fixed[name]

    def decode(self, x: ArrayLike) -> GPUNetArch:
        x = self.validate(x)
        vals = self.values(x)
        rows = []
        for s in self.stages:
            p = f's{s.stage}.'
            num = int(self._value(vals, p + 'layers'))
            if num == 0:
                continue
            rows.append(
                BlockRow(
                    type=s.block,
                    kernel=int(self._value(vals, p + 'kernel')),
                    out_channels=int(self._value(vals, p + 'filters')),
                    num=num,
                    stride=s.stride,
                    expansion=int(self._value(vals, p + 'expansion')) if s.block != 'conv' else 1,
                    act=str(self._value(vals, p + 'act')),
                    se=bool(self._value(vals, p + 'se')) if s.block != 'conv' else False,
                    stage=s.stage,
                )
            )
        return GPUNetArch(
            name=f'{self.name_prefix}-{self.key_hash(x)[:8]}',
            rows=tuple(rows),
            tail_channels=(self.tail_channels,),
            resolution=int(self._value(vals, 'resolution')),
            family='gpunet',
        )

    def key_hash(self, x: ArrayLike) -> str:
        return hashlib.sha256(self.key(x).encode()).hexdigest()

    def hash(self, x: ArrayLike) -> str:
        """The decoded architecture's :meth:`GPUNetArch.structural_hash`."""
        return self.decode(x).structural_hash()

    def encode(self, obj: Union[GPUNetArch, Mapping[str, Any]]) -> np.ndarray:
        arch = obj if isinstance(obj, GPUNetArch) else GPUNetArch.from_dict(obj)
        if arch.family != 'gpunet':
            raise ValueError(f"arch.family: got {arch.family!r}; allowed: 'gpunet' in this space")
        if tuple(arch.tail_channels) != (self.tail_channels,):
            raise ValueError(
                f'arch.tail_channels: got {list(arch.tail_channels)}; allowed: '
                f'[{self.tail_channels}] in this space'
            )
        by_stage: Dict[int, BlockRow] = {}
        for row in arch.rows:
            if row.stage in by_stage:
                raise ValueError(
                    f'arch {arch.name!r}: stage {row.stage} has several rows; this space has '
                    'one row per stage (all layers of a stage share their choices)'
                )
            by_stage[row.stage] = row
        known = {s.stage for s in self.stages}
        if set(by_stage) - known:
            raise ValueError(
                f'arch {arch.name!r} stages: got {sorted(by_stage)}; allowed: {sorted(known)}'
            )
        vals: Dict[str, Any] = {}
        for s in self.stages:
            p = f's{s.stage}.'
            row = by_stage.get(s.stage)
            if row is None:
                vals[p + 'layers'] = 0
                vals.update(_smallest_choices(s, p))
                continue
            if row.type != s.block or row.stride != s.stride:
                raise ValueError(
                    f'arch {arch.name!r} stage {s.stage}: got {row.type} stride {row.stride}; '
                    f'allowed: {s.block} stride {s.stride}'
                )
            vals[p + 'layers'] = row.num
            vals[p + 'filters'] = row.out_channels
            vals[p + 'kernel'] = row.kernel
            vals[p + 'expansion'] = int(row.expansion) if s.block != 'conv' else 1
            if s.block != 'conv' and float(row.expansion) != int(row.expansion):
                raise ValueError(
                    f'arch stage {s.stage} expansion: got {row.expansion}; allowed: '
                    f'{list(s.expansions)}'
                )
            vals[p + 'act'] = row.act
            vals[p + 'se'] = bool(row.se)
        vals['resolution'] = arch.resolution
        for name, v in self._fixed.items():
            if vals[name] != v:
                raise ValueError(f'{name}: got {vals[name]!r}; allowed: [{v!r}]')
        x = self.from_values({k: v for k, v in vals.items() if k in self._index})
        return self.canonical(x)

    def project(self, obj: Union[GPUNetArch, Mapping[str, Any]]) -> np.ndarray:
        """The nearest point of this space to any GPUNet-like architecture.

        Unlike ``encode()``, which refuses what the space cannot express, this maps
        *any* architecture (a published tier with per-layer kernels, fractional
        expansions, another tail or stage layout) to a point, so it can serve as a prior.
        Layers are matched by downsampling level (feature-map stride), not by stage
        label: the architecture's stage groups at a level fill this space's stages at that
        level in order (extra groups merge into the last one). Per stage: layers add up
        (clipped to the range), filters are the group's last width, kernel/expansion the
        layer-weighted mean, activation the majority, SE if most layers use it; each
        snapped to the nearest choice. Resolution snaps to the nearest allowed one.
        """
        arch = obj if isinstance(obj, GPUNetArch) else GPUNetArch.from_dict(obj)
        # this space's stages per level (a stride-2 stage opens a level)
        space_levels: List[List[StageSpec]] = []
        for s in self.stages:
            if s.stride == 2 or not space_levels:
                space_levels.append([])
            space_levels[-1].append(s)
        # the architecture's layers per level, grouped by its own stage label
        arch_levels: List[List[List[Any]]] = []
        for layer in arch.layers():
            if layer.stride == 2 or not arch_levels:
                arch_levels.append([])
            groups = arch_levels[-1]
            if not groups or groups[-1][0].stage != layer.stage:
                groups.append([])
            groups[-1].append(layer)

        def snap(value: float, choices: Sequence[Any]) -> Any:
            return min(choices, key=lambda c: (abs(float(c) - float(value)), float(c)))

        vals: Dict[str, Any] = {}
        for lv, stages in enumerate(space_levels):
            groups = arch_levels[lv] if lv < len(arch_levels) else []
            if len(groups) > len(stages):  # merge the extra groups into the last stage
                groups = groups[: len(stages) - 1] + [
                    [lay for g in groups[len(stages) - 1 :] for lay in g]
                ]
            for i, s in enumerate(stages):
                p = f's{s.stage}.'
                g = groups[i] if i < len(groups) else []
                n = len(g)
                vals[p + 'layers'] = snap(n, s.layer_choices)
                if not g:  # nothing at this stage: the smallest setting
                    vals.update(_smallest_choices(s, p))
                    continue
                vals[p + 'filters'] = snap(g[-1].out_channels, s.filter_choices)
                vals[p + 'kernel'] = snap(np.mean([lay.kernel for lay in g]), s.kernels)
                expansions = [lay.mid_channels / max(lay.in_channels, 1) for lay in g]
                vals[p + 'expansion'] = snap(np.mean(expansions), s.expansions or (1,))
                n_swish = sum(lay.act == 'swish' for lay in g)
                act = 'swish' if 2 * n_swish > n else 'relu'
                vals[p + 'act'] = act if act in s.acts else s.acts[0]
                se = 2 * sum(lay.se_channels > 0 for lay in g) > n
                vals[p + 'se'] = se if se in s.se else bool(s.se[0])
        vals['resolution'] = snap(arch.resolution, self.resolutions)
        x = self.from_values({k: v for k, v in vals.items() if k in self._index})
        return self.canonical(x)

    def to_json(self, x: ArrayLike) -> Any:
        return self.decode(x).to_dict()

    def from_json(self, data: Any) -> np.ndarray:
        return self.encode(GPUNetArch.from_dict(data))

    def smallest(self) -> GPUNetArch:
        """All ordinal choices at their minimum and categoricals at their first choice."""
        return self.decode(self.canonical(np.zeros(self.dims)))

    def config(self) -> Dict[str, Any]:
        return dict(
            type=self.type_name,
            variant=self.variant,
            resolutions=list(self.resolutions),
            stages=[
                {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()}
                for s in self._stage_overrides
            ],
            tail_channels=self.tail_channels,
            name_prefix=self.name_prefix,
        )
