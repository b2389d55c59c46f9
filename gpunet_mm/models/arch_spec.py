"""The one architecture format shared by the hub tiers, the backbone builder and the NAS.

An architecture is a short list of *block rows*, the same shape as the paper's stage table
and as mmpretrain's ``layer_settings``: each row says "``num`` layers of block ``type`` with
kernel ``kernel``, expansion ``expansion``, ``out_channels`` filters, the first one with
stride ``stride``". Rows carry the paper's ``stage`` number so the search space and the
published tiers speak the same language; the backbone regroups layers by output stride.

The spec is pure Python (no torch import) so the search can create, hash and validate
thousands of candidates cheaply, and it round-trips through JSON and mmengine configs.

Two block-semantics families exist in the release and are recorded in ``family``:

* ``'gpunet'`` (GPUNet-0/1/2/P0/P1): BN eps 1e-3, mid channels rounded with
  ``make_divisible(in * e, 8)``, SE squeeze ``round(mid * 0.25 / e)``, tail
  ``conv1x1 -> BN -> ReLU``.
* ``'distilled'`` (GPUNet-D1/D2): BN eps 1e-5, ``mid = in * e`` exactly (``e`` must make it
  an integer), tail ``conv1x1 -> BN -> ReLU`` then, after pooling, a bias-free
  ``1x1 -> ReLU`` (two entries in ``tail_channels``).

In both families every IRB has its 1x1 expansion conv, even when ``mid == in``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os.path as osp
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..schema import (  # the sane upper bounds are declared with the schema layer
    MAX_CHANNELS,
    MAX_EXPANSION,
    MAX_IN_CHANNELS,
    MAX_KERNEL,
    MAX_LAYERS_PER_ROW,
    MAX_RESOLUTION,
    MAX_ROWS,
)

BLOCK_TYPES = ('conv', 'fused', 'irb')
ACTS = ('relu', 'swish')
FAMILIES = ('gpunet', 'distilled')
STRIDES = (1, 2)


def _err(what: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f'{what}: got {value!r}; allowed: {allowed}')


def _is_int(value: Any) -> bool:
    """A real integer: ``True``/``2.0``/``'2'`` are not channel counts or kernel sizes."""
    if type(value) is int:  # the common case, without the ABC check (hot in the NAS)
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class BlockRow:
    """``num`` consecutive layers of one block type; only the first has ``stride``.

    Attributes:
        type: ``'conv'`` (Conv-BN-act, no residual), ``'fused'`` (Fused-IRB, a.k.a.
            EdgeResidual / FusedMBConv) or ``'irb'`` (inverted residual, MBConv).
        kernel: spatial kernel size (odd).
        out_channels: output channels of every layer in the row.
        num: number of layers (>= 1).
        stride: stride of the first layer (1 or 2); the others use 1.
        expansion: mid/in channel ratio for ``fused``/``irb`` (ignored for ``conv``).
        act: ``'relu'`` or ``'swish'`` (SiLU).
        se: squeeze-and-excitation inside the block (``fused``/``irb`` only).
        stage: the paper's stage number, kept for the search space and readability.
    """

    type: str
    kernel: int
    out_channels: int
    num: int = 1
    stride: int = 1
    expansion: float = 1.0
    act: str = 'relu'
    se: bool = False
    stage: int = 0

    def validate(self, where: str = 'row') -> None:
        if self.type not in BLOCK_TYPES:
            raise _err(f'{where}.type', self.type, ', '.join(BLOCK_TYPES))
        if not _is_int(self.kernel) or not 1 <= self.kernel <= MAX_KERNEL or self.kernel % 2 == 0:
            raise _err(f'{where}.kernel', self.kernel, f'odd integers >= 1 and <= {MAX_KERNEL}')
        if not _is_int(self.out_channels) or not 0 < self.out_channels <= MAX_CHANNELS:
            raise _err(
                f'{where}.out_channels', self.out_channels, f'integers > 0 and <= {MAX_CHANNELS}'
            )
        if not _is_int(self.num) or not 1 <= self.num <= MAX_LAYERS_PER_ROW:
            raise _err(f'{where}.num', self.num, f'integers >= 1 and <= {MAX_LAYERS_PER_ROW}')
        if not _is_int(self.stride) or self.stride not in STRIDES:
            raise _err(f'{where}.stride', self.stride, '1 or 2')
        if (
            not isinstance(self.expansion, numbers.Real)
            or isinstance(self.expansion, bool)
            or not math.isfinite(self.expansion)
            or not 0 < self.expansion <= MAX_EXPANSION
        ):
            raise _err(
                f'{where}.expansion', self.expansion, f'finite numbers > 0 and <= {MAX_EXPANSION:g}'
            )
        if self.act not in ACTS:
            raise _err(f'{where}.act', self.act, ', '.join(ACTS))
        if not isinstance(self.se, bool):
            raise _err(f'{where}.se', self.se, 'True or False')
        if self.se and self.type == 'conv':
            raise _err(f'{where}.se', self.se, "False for type 'conv'")
        if not _is_int(self.stage) or self.stage < 0:
            raise _err(f'{where}.stage', self.stage, 'integers >= 0')


@dataclass(frozen=True)
class LayerSpec:
    """One concrete layer, as the builder sees it (rows expanded, channels resolved)."""

    type: str
    in_channels: int
    out_channels: int
    mid_channels: int
    kernel: int
    stride: int
    act: str
    se_channels: int  # 0 when the layer has no SE
    stage: int


@dataclass(frozen=True)
class PlacedLayer(LayerSpec):
    """A :class:`LayerSpec` with its place in the network and its feature-map sizes.

    ``index`` counts all layers, ``level``/``position`` say which entry of the backbone's
    ``layers[level][position]`` builds it; ``padding`` is its spatial conv's padding;
    ``in_hw``/``out_hw`` are (H, W) for the input shape given to :meth:`GPUNetArch.levels`.
    """

    index: int
    level: int
    position: int
    padding: int
    in_hw: Tuple[int, int]
    out_hw: Tuple[int, int]


@dataclass(frozen=True)
class Level:
    """Layers from one stride-2 layer up to the next: the backbone's ``layers[index]``."""

    index: int
    stride: int  # output stride of the level, 2 ** (index + 1)
    layers: Tuple[PlacedLayer, ...]

    @property
    def in_channels(self) -> int:
        return self.layers[0].in_channels

    @property
    def out_channels(self) -> int:
        return self.layers[-1].out_channels

    @property
    def out_hw(self) -> Tuple[int, int]:
        return self.layers[-1].out_hw


#: interned placed layers: a search decodes ~100 new architectures per proposal, most of
#: whose layers (all those before the first changed stage) exist already; sharing the frozen
#: objects halves the cost of :meth:`GPUNetArch.levels` there. Bounded: cleared when full.
_PLACED: Dict[Tuple[Any, ...], PlacedLayer] = {}
_PLACED_MAX = 50_000  # about 30 MB at most


def _placed_layer(fields_: Tuple[Any, ...]) -> PlacedLayer:
    layer = _PLACED.get(fields_)
    if layer is None:
        if len(_PLACED) >= _PLACED_MAX:
            _PLACED.clear()
        layer = _PLACED[fields_] = PlacedLayer(*fields_)
    return layer


def make_divisible(
    value: float, divisor: int = 8, min_value: int | None = None, min_ratio: float = 0.9
) -> int:
    """Round to the nearest multiple of ``divisor`` but never below ``min_ratio * value``.

    Same rule as mmpretrain's ``make_divisible`` (and the release's): kept here because
    the spec must stay importable without torch/mmcv; ``tests`` check they agree.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < min_ratio * value:
        new_value += divisor
    return new_value


@dataclass(frozen=True)
class GPUNetArch:
    """A whole network: rows in order, plus the tail and the semantics family."""

    name: str
    rows: Tuple[BlockRow, ...]
    tail_channels: Tuple[int, ...] = (1280,)
    resolution: int = 224
    family: str = 'gpunet'
    in_channels: int = 3
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: :meth:`levels` by (shape, release_padding): an arch is immutable, and the one pass is
    #: read by several consumers of the same arch (cost models, backbone, checks)
    _levels_memo: Dict[Any, Tuple[Level, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            'rows',
            tuple(r if isinstance(r, BlockRow) else _row_from_any(r) for r in self.rows),
        )
        if not isinstance(self.tail_channels, (tuple, list)) or not all(
            _is_int(c) for c in self.tail_channels
        ):
            raise _err(
                f'arch {self.name!r} tail_channels', self.tail_channels, 'a list of integers'
            )
        object.__setattr__(self, 'tail_channels', tuple(self.tail_channels))
        self.validate()

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise _err('arch.family', self.family, ', '.join(FAMILIES))
        if not self.rows:
            raise ValueError(f'arch {self.name!r}: rows is empty; at least one row is needed')
        if len(self.rows) > MAX_ROWS:
            raise _err(f'arch {self.name!r} rows', f'{len(self.rows)} rows', f'<= {MAX_ROWS} rows')
        for i, row in enumerate(self.rows):
            row.validate(f'arch {self.name!r} rows[{i}]')
        if self.family == 'gpunet' and len(self.tail_channels) not in (0, 1):
            raise _err(
                f"arch {self.name!r} tail_channels (family 'gpunet')",
                self.tail_channels,
                'a tuple of 0 or 1 channel counts',
            )
        if self.family == 'distilled' and len(self.tail_channels) not in (0, 2):
            raise _err(
                f"arch {self.name!r} tail_channels (family 'distilled')",
                self.tail_channels,
                'a tuple of 0 or 2 channel counts',
            )
        if any(not 0 < c <= MAX_CHANNELS for c in self.tail_channels):
            raise _err(
                f'arch {self.name!r} tail_channels',
                self.tail_channels,
                f'channel counts > 0 and <= {MAX_CHANNELS}',
            )
        if not _is_int(self.resolution) or not 0 < self.resolution <= MAX_RESOLUTION:
            raise _err(
                f'arch {self.name!r} resolution',
                self.resolution,
                f'integers > 0 and <= {MAX_RESOLUTION}',
            )
        if not _is_int(self.in_channels) or not 0 < self.in_channels <= MAX_IN_CHANNELS:
            raise _err(
                f'arch {self.name!r} in_channels',
                self.in_channels,
                f'integers > 0 and <= {MAX_IN_CHANNELS}',
            )
        if self.family == 'distilled':
            cin = self.in_channels
            for i, layer_row in enumerate(self.rows):
                for j in range(layer_row.num):
                    mid = cin * layer_row.expansion
                    if layer_row.type != 'conv' and abs(mid - round(mid)) > 1e-6:
                        raise ValueError(
                            f'arch {self.name!r} rows[{i}] layer {j}: distilled blocks use '
                            f'mid = in * e exactly, but {cin} * {layer_row.expansion} is not '
                            'an integer'
                        )
                    cin = layer_row.out_channels

    # ------------------------------------------------------------------ derived facts
    def _layer_fields(self) -> Iterator[Tuple[Any, ...]]:
        """The :class:`LayerSpec` fields of every layer, in order (rows expanded, channel
        widths resolved): the rule both :meth:`layers` and :meth:`levels` build on."""
        cin = self.in_channels
        for row in self.rows:
            for j in range(row.num):
                if j < 2:  # the layers after the first of a row are all alike
                    stride = row.stride if j == 0 else 1
                    mid, se_ch = cin, 0
                    if row.type in ('fused', 'irb'):
                        if self.family == 'gpunet':
                            mid = make_divisible(cin * row.expansion)
                        else:
                            mid = int(round(cin * row.expansion))
                        if row.se:
                            se_ch = max(1, int(round(mid * 0.25 / row.expansion)))
                    elif row.type == 'conv':
                        mid = row.out_channels
                    fields_ = (
                        row.type,
                        cin,
                        row.out_channels,
                        mid,
                        row.kernel,
                        stride,
                        row.act,
                        se_ch,
                        row.stage,
                    )
                yield fields_
                cin = row.out_channels

    def layers(self) -> List[LayerSpec]:
        """Expand rows into concrete layers with resolved channel widths."""
        return [LayerSpec(*f) for f in self._layer_fields()]

    @property
    def num_layers(self) -> int:
        return sum(r.num for r in self.rows)

    @property
    def out_channels(self) -> int:
        """Channels of the last block (before the tail)."""
        return self.rows[-1].out_channels

    def cls_head_channels(self) -> Dict[str, Optional[int]]:
        """``in_channels``/``hidden_channels`` of the classifier head after pooling.

        The tail's first width feeds the head; the distilled family's second tail width is
        the head's bias-free hidden layer (``None`` for the gpunet family).
        """
        if not self.tail_channels:
            raise ValueError(
                f'arch {self.name!r} has no tail_channels, so no classification head; '
                'allowed: an arch with tail_channels'
            )
        hidden = self.tail_channels[1] if len(self.tail_channels) > 1 else None
        return dict(in_channels=self.tail_channels[0], hidden_channels=hidden)

    @property
    def bn_eps(self) -> float:
        return 1e-3 if self.family == 'gpunet' else 1e-5

    def levels(
        self, shape: Union[int, Tuple[int, int], None] = None, release_padding: bool = False
    ) -> List[Level]:
        """The network as levels of placed layers: the one pass every consumer shares.

        A level starts at each stride-2 layer (the first layer is the stride-2 stem), so
        level ``i`` ends at output stride ``2**(i+1)``; this is the grouping of the
        backbone's ``layers``, of its ``out_indices`` and of the release-checkpoint keys.
        Each layer carries its level, its position in the level and its input/output
        feature-map size for an input of ``shape`` (``(H, W)`` or a square side; default
        the arch's ``resolution``), as the backbone's convs compute it (padding
        ``k // 2``; with ``release_padding`` stride-2 fused convs are unpadded, as in the
        release, so 160 -> 79).
        """
        if shape is None:
            shape = (self.resolution, self.resolution)
        elif _is_int(shape):
            shape = (shape, shape)
        if (
            not isinstance(shape, (tuple, list))
            or len(shape) != 2
            or not all(_is_int(v) and v > 0 for v in shape)
        ):
            raise _err('shape', shape, 'a positive integer or (H, W) of positive integers')
        memo_key = (int(shape[0]), int(shape[1]), bool(release_padding))
        if memo_key in self._levels_memo:
            return list(self._levels_memo[memo_key])
        levels: List[Level] = []
        placed: List[PlacedLayer] = []
        hw, stride = (int(shape[0]), int(shape[1])), 1
        for index, f in enumerate(self._layer_fields()):
            typ, kernel, s = f[0], f[4], f[5]
            if index == 0 and s != 2:
                raise ValueError(
                    f'arch {self.name!r}: the first layer is the stem and must have stride 2; '
                    f'got stride {s}'
                )
            if s == 2 and placed:
                levels.append(Level(len(levels), stride, tuple(placed)))
                placed = []
            stride *= s
            pad = 0 if release_padding and typ == 'fused' and s == 2 else kernel // 2
            out_hw = (
                conv_out_size(hw[0], kernel, s, pad),
                conv_out_size(hw[1], kernel, s, pad),
            )
            placed.append(_placed_layer((*f, index, len(levels), len(placed), pad, hw, out_hw)))
            hw = out_hw
        levels.append(Level(len(levels), stride, tuple(placed)))
        self._levels_memo[memo_key] = tuple(levels)
        return levels

    def placed_layers(
        self, shape: Union[int, Tuple[int, int], None] = None, release_padding: bool = False
    ) -> List[PlacedLayer]:
        """All layers of :meth:`levels` in network order (for per-layer cost loops)."""
        return [ly for lv in self.levels(shape, release_padding) for ly in lv.layers]

    def level_strides(self) -> List[int]:
        """Output stride of each level (see :meth:`levels`)."""
        return [lv.stride for lv in self.levels()]

    def level_channels(self) -> List[int]:
        """Output channels of each level (the channels of its last layer)."""
        return [lv.out_channels for lv in self.levels()]

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> Dict[str, Any]:
        d = {
            'name': self.name,
            'family': self.family,
            'resolution': self.resolution,
            'in_channels': self.in_channels,
            'tail_channels': list(self.tail_channels),
            'rows': [_row_to_dict(r) for r in self.rows],
        }
        if self.meta:
            d['meta'] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GPUNetArch:
        if not isinstance(d, Mapping):
            raise _err('arch', type(d).__name__, 'a dict with keys name, rows, ...')
        allowed = {'name', 'family', 'resolution', 'in_channels', 'tail_channels', 'rows', 'meta'}
        unknown = set(d) - allowed
        if unknown:
            raise _err('arch keys', sorted(unknown), ', '.join(sorted(allowed)))
        if 'rows' not in d:
            raise ValueError(f"arch dict has no 'rows'; keys given: {sorted(d)}")
        return cls(
            name=str(d.get('name', 'custom')),
            rows=tuple(_row_from_any(r) for r in d['rows']),
            tail_channels=d.get('tail_channels', (1280,)),
            resolution=d.get('resolution', 224),
            family=d.get('family', 'gpunet'),
            in_channels=d.get('in_channels', 3),
            meta=_plain(d.get('meta', {})),
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> GPUNetArch:
        return cls.from_dict(json.loads(text))

    def structural_hash(self, length: int = 16) -> str:
        """Stable hash of everything that changes the network (not ``name``/``meta``)."""
        d = self.to_dict()
        d.pop('name')
        d.pop('meta', None)
        blob = json.dumps(d, sort_keys=True, separators=(',', ':'))
        return hashlib.sha256(blob.encode()).hexdigest()[:length]

    def replace(self, **changes: Any) -> GPUNetArch:
        return replace(self, **changes)

    def __iter__(self) -> Iterator[BlockRow]:
        return iter(self.rows)


_ROW_FIELDS = tuple(f.name for f in fields(BlockRow))


def _plain(value: Any) -> Any:
    """Nested mappings and sequences as plain dicts and lists. An arch read from a config
    holds mmengine ``ConfigDict`` s, which a checkpoint's ``meta`` would then pickle: such a
    checkpoint no longer loads weights-only (a rung's continuation could not resume it)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _row_to_dict(row: BlockRow) -> Dict[str, Any]:
    d = asdict(row)
    if float(d['expansion']).is_integer():
        d['expansion'] = int(d['expansion'])
    return d


def _row_from_any(r: Union[BlockRow, Mapping[str, Any], Sequence[Any]]) -> BlockRow:
    if isinstance(r, BlockRow):
        return r
    if isinstance(r, Mapping):
        unknown = set(r) - set(_ROW_FIELDS)
        if unknown:
            raise _err('row keys', sorted(unknown), ', '.join(_ROW_FIELDS))
        missing = {'type', 'kernel', 'out_channels'} - set(r)
        if missing:
            raise ValueError(f'row {dict(r)!r} misses required keys {sorted(missing)}')
        return BlockRow(**r)
    if isinstance(r, (list, tuple)):
        if not 3 <= len(r) <= len(_ROW_FIELDS):
            raise _err('row list', r, f'3 to {len(_ROW_FIELDS)} items in the order {_ROW_FIELDS}')
        return BlockRow(*r)
    raise _err('row', r, 'a BlockRow, a dict or a list')


def as_arch(arch: Union[GPUNetArch, Mapping[str, Any], str]) -> GPUNetArch:
    """Accept a GPUNetArch, a dict (as from a config), a JSON string or a ``.json`` file path.

    A string that is not JSON text (does not start with ``{``) is read as a file path, so
    ``arch='work_dirs/search/best_arch.json'`` works and a mistyped path says so.
    """
    if isinstance(arch, GPUNetArch):
        return arch
    if isinstance(arch, str):
        text = arch.strip()
        if not text.startswith('{'):
            if not osp.isfile(text):
                raise ValueError(
                    f'arch: got {arch!r}, neither JSON text nor an existing file; allowed: '
                    'a GPUNetArch, a dict, JSON text or the path of a .json arch file '
                    '(use tier= for a published network)'
                )
            with open(text) as f:
                try:
                    return GPUNetArch.from_json(f.read())
                except json.JSONDecodeError as e:
                    raise ValueError(f'arch file {text} is not valid JSON: {e}') from e
        try:
            return GPUNetArch.from_json(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f'arch string is not valid JSON ({e}); pass a dict, a '
                'GPUNetArch, a .json file path, or use tier= for a published network'
            ) from e
    if not isinstance(arch, Mapping):
        raise _err('arch', type(arch).__name__, 'a GPUNetArch, a dict, JSON text or a file path')
    return GPUNetArch.from_dict(arch)


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def feature_sizes(arch: GPUNetArch, size: int, release_padding: bool = False) -> List[int]:
    """Spatial size after each level for a square input (no torch needed)."""
    return [lv.out_hw[0] for lv in arch.levels(size, release_padding=release_padding)]
