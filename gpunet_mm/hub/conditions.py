"""``--condition 'latency_ms<=1.0,top1>=80'`` filters and ``--sort`` keys, as in ``mim search``.

A condition is ``FIELD OP VALUE``; several are joined by commas and must all hold. Numeric
fields compare as numbers; an entry without the field (a classifier has no ``bbox_mAP``)
does not pass a condition on it.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Union

from .entry import HubEntry, HubError

NUMERIC_FIELDS = (
    'latency_ms',
    'metric',
    'top1',
    'bbox_mAP',
    'mAP',
    'backbone_top1',
    'params',
    'params_m',
    'flops',
    'gflops',
    'batch',
    'height',
    'width',
)
TEXT_FIELDS = ('name', 'device', 'backend', 'precision', 'task')
FIELDS = NUMERIC_FIELDS + TEXT_FIELDS
OPERATORS: Dict[str, Callable[[Any, Any], bool]] = {
    '<=': operator.le,
    '>=': operator.ge,
    '==': operator.eq,
    '!=': operator.ne,
    '<': operator.lt,
    '>': operator.gt,
    '=': operator.eq,
}
_PATTERN = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*([^A-Za-z0-9_\s.+\-]+)\s*(.*?)\s*$')


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Union[float, str]

    def __call__(self, entry: HubEntry) -> bool:
        have = entry.values()[self.field]
        if have is None:
            return False
        if isinstance(self.value, str):
            have = str(have).lower()
        return OPERATORS[self.op](have, self.value)

    def __str__(self) -> str:
        return f'{self.field}{self.op}{self.value}'


def parse_conditions(text: Union[str, Sequence[str], None]) -> List[Condition]:
    """Parse ``'a<=1,b>=2'`` (or a list of such strings) into conditions."""
    if not text:
        return []
    parts: List[str] = []
    for chunk in [text] if isinstance(text, str) else list(text):
        parts += [p for p in chunk.split(',') if p.strip()]
    out = []
    for part in parts:
        m = _PATTERN.match(part)
        if not m:
            raise HubError(
                f'condition {part.strip()!r}: expected FIELD OP VALUE, e.g. latency_ms<=1.0; '
                f'fields: {", ".join(FIELDS)}; operators: {" ".join(OPERATORS)}'
            )
        name, op, raw = m.groups()
        if name not in FIELDS:
            raise HubError(
                f'condition {part.strip()!r}: unknown field {name!r}; allowed: {", ".join(FIELDS)}'
            )
        if op not in OPERATORS:
            raise HubError(
                f'condition {part.strip()!r}: unknown operator {op!r}; '
                f'allowed: {" ".join(OPERATORS)}'
            )
        if not raw:
            raise HubError(f'condition {part.strip()!r}: no value after {op!r}')
        value: Union[float, str]
        if name in NUMERIC_FIELDS:
            try:
                value = float(raw)
            except ValueError:
                raise HubError(
                    f'condition {part.strip()!r}: {name} is numeric, got {raw!r}'
                ) from None
        else:
            if op not in ('=', '==', '!='):
                raise HubError(
                    f'condition {part.strip()!r}: {name} is text; allowed operators: = == !='
                )
            value = raw.lower()
        out.append(Condition(name, op, value))
    return out


def sort_entries(
    entries: Sequence[HubEntry], keys: Sequence[str], descending: bool = False
) -> List[HubEntry]:
    """Sort by ``keys`` (fields of :data:`FIELDS`); entries missing a key go last."""
    for k in keys:
        if k not in FIELDS:
            raise HubError(f'sort key {k!r}: unknown field; allowed: {", ".join(FIELDS)}')
    out = list(entries)
    for k in reversed(list(keys)):
        present = [e for e in out if e.values()[k] is not None]
        missing = [e for e in out if e.values()[k] is None]
        present.sort(key=lambda e, k=k: e.values()[k], reverse=descending)
        out = present + missing
    return out
