"""The model hub: the shipped table merged with a user hub file, and the questions it answers.

``ModelHub(path)`` reads the shipped rows (the published tiers, the measured rows in
``gpunet_mm/hub/data/``) and the user's hub file at ``path`` (JSON Lines, see
:mod:`gpunet_mm.hub.store`). The user file defaults to ``$GPUNET_MM_HUB`` or
``~/.cache/gpunet_mm/hub.jsonl``; every function takes ``path=`` to name another one. A user
row with the key of a shipped row (``replace=True``) shadows it; the shipped files are
never written.
"""

from __future__ import annotations

import difflib
import os
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .conditions import Condition, parse_conditions
from .entry import (
    PRECISIONS,
    HubEntry,
    HubError,
    device_kind,
    device_matches,
    local_devices,
    normalize_backend,
    normalize_device,
    normalize_task,
)
from .ranking import best, pareto_front
from .shipped import shipped_entries
from .store import locked, read_entries, write_entries

ENV_VAR = 'GPUNET_MM_HUB'
DEFAULT_HUB_FILE = osp.join('~', '.cache', 'gpunet_mm', 'hub.jsonl')

EntryLike = Union[HubEntry, Mapping[str, Any]]
ConditionsLike = Union[str, Sequence[str], Sequence[Condition], None]


class UnknownDeviceError(HubError):
    """A device no hub row is measured on (the message lists the known ones)."""


class BudgetError(HubError):
    """A latency budget under the fastest matching row (the message names that row)."""


class NameConflictError(HubError):
    """``add`` of a name or row that exists (pass ``replace=True`` to overwrite)."""


class OtherDeviceWarning(UserWarning):
    """A query answered from a device that is not the one asked about (or not this one)."""


@dataclass
class Answer:
    """What :meth:`ModelHub.answer` found: the row, the devices the question meant, and a
    note (None when the row was measured on the device asked about)."""

    entry: HubEntry
    devices: List[str]
    note: Optional[str] = None


def default_hub_file() -> str:
    return osp.expanduser(os.environ.get(ENV_VAR) or DEFAULT_HUB_FILE)


class ModelHub:
    """Shipped rows plus the user hub file at ``path``; see the module docstring.

    ``here`` names this machine's devices (``dict(cpu='cpu-<model>', gpu=None)``; default:
    read from the machine, ``gpunet_mm.hub.local_devices()``): a query without a
    device, or with ``'cpu'`` / ``'gpu'``, means these.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        include_shipped: bool = True,
        here: Optional[Mapping[str, Optional[str]]] = None,
    ) -> None:
        self.path = osp.expanduser(path) if path else default_hub_file()
        self._shipped = shipped_entries() if include_shipped else []
        self._here = dict(here) if here is not None else None

    @property
    def here(self) -> Dict[str, Optional[str]]:
        if self._here is None:
            self._here = local_devices()
        return self._here

    # ------------------------------------------------------------------ reading
    def user_entries(self) -> List[HubEntry]:
        """The user file's rows, checked on every read: no row may take a shipped model's
        name for another network, one name names one network, and one key one row."""
        rows = read_entries(self.path)
        check_names(rows, self._shipped, self.path)
        return rows

    def entries(self) -> List[HubEntry]:
        """Shipped rows, then user rows; a user row replaces the shipped row of its key."""
        merged: Dict[str, HubEntry] = {e.key: e for e in self._shipped}
        for e in self.user_entries():
            merged[e.key] = e
        return list(merged.values())

    def devices(self) -> List[str]:
        return sorted({e.device for e in self.entries()})

    def names(self) -> List[str]:
        return sorted({e.name for e in self.entries()}, key=str.lower)

    def list_models(
        self,
        task: Optional[str] = None,
        device: Optional[str] = None,
        backend: Optional[str] = None,
        precision: Optional[str] = None,
        batch: Optional[int] = None,
        provenance: Optional[str] = None,
        detector: Optional[str] = None,
        input_shape: Optional[Tuple[int, int]] = None,
        conditions: ConditionsLike = None,
        include_toy: bool = False,
    ) -> List[HubEntry]:
        """Rows matching every given filter, by task, device, backend and latency.

        ``device='cpu'`` matches every ``cpu-<model>`` device; other names match exactly
        (case-insensitive). Filters on values no row has raise with the known values.
        Rows with a caveat (simulated, toy data, no named dataset: ``gpunet_mm.hub.CAVEATS``) are
        left out unless ``include_toy``.
        """
        rows = self.entries()
        if not include_toy:
            rows = [e for e in rows if not e.caveats]
        if task is not None:
            task = normalize_task(task)
            rows = [e for e in rows if e.task == task]
        if device is not None:
            known = sorted({e.device for e in self.entries()})
            if not any(device_matches(device, d) for d in known):
                raise UnknownDeviceError(
                    f'device: got {device!r}; known devices: {", ".join(known)} '
                    "('cpu' matches every cpu-* device)"
                )
            rows = [e for e in rows if device_matches(device, e.device)]
        if backend is not None:
            backend = normalize_backend(backend)
            known = sorted({e.backend for e in self.entries()})
            if backend not in known:
                raise HubError(f'backend: got {backend!r}; known backends: {", ".join(known)}')
            rows = [e for e in rows if e.backend == backend]
        if precision is not None:
            if precision.lower() not in PRECISIONS:
                raise HubError(f'precision: got {precision!r}; allowed: {", ".join(PRECISIONS)}')
            rows = [e for e in rows if e.precision == precision.lower()]
        if batch is not None:
            rows = [e for e in rows if e.batch == int(batch)]
        if provenance is not None:
            kinds = ('paper', 'measured', 'search')
            if provenance not in kinds:
                raise HubError(f'provenance: got {provenance!r}; allowed: {", ".join(kinds)}')
            rows = [e for e in rows if e.provenance.kind == provenance]
        if detector is not None:
            rows = [e for e in rows if (e.detector or '').lower() == detector.lower()]
        if input_shape is not None:
            shape = tuple(int(v) for v in input_shape)
            rows = [e for e in rows if e.input_shape == shape]
        for cond in _conditions(conditions):
            rows = [e for e in rows if cond(e)]
        return sorted(
            rows, key=lambda e: (e.task, e.device, e.backend, e.precision, e.batch, e.latency_ms)
        )

    def own_devices(self, device: Optional[str] = None) -> Tuple[List[str], Optional[str]]:
        """The devices a question about ``device`` means, and the kind it may fall back to.

        None (or ``'here'``): this machine's GPU and CPU; ``'cpu'``: this machine's CPU;
        ``'gpu'`` / ``'cuda'``: its GPU; another name: that device only (no fall-back).
        """
        here = self.here
        key = None if device is None else str(device).strip().lower()
        if key in (None, 'here', 'local'):
            own = [d for d in (here.get('gpu'), here.get('cpu')) if d]
            return own, 'gpu' if here.get('gpu') else 'cpu'
        if key == 'cpu':
            return [str(here['cpu'])], 'cpu'
        if key in ('gpu', 'cuda'):
            if not here.get('gpu'):
                gpus = sorted({e.device for e in self.entries() if device_kind(e.device) == 'gpu'})
                raise UnknownDeviceError(
                    f'device {device!r}: this machine has no visible GPU; name one: '
                    f'{", ".join(gpus)}'
                )
            return [str(here['gpu'])], 'gpu'
        return [normalize_device(str(device))], None

    def answer(
        self,
        device: Optional[str],
        latency_ms: float,
        by_backbone_top1: bool = False,
        **filters: Any,
    ) -> Answer:
        """The most accurate row within ``latency_ms`` on ``device`` (None: this machine),
        with a note when it was measured on another device; filters as :meth:`list_models`.

        ``device`` None, ``'cpu'`` or ``'gpu'`` mean this machine's devices
        (:meth:`ModelHub.own_devices`); when no row was measured on them, the answer comes from
        another device of the same kind and the note says so. Detectors are ranked by
        their own task metric (bbox mAP on a named dataset); rows that only have their
        backbone's ImageNet top-1 answer with ``by_backbone_top1`` (and say so).
        Ranking rules: :mod:`gpunet_mm.hub.ranking`.

        Raises :class:`BudgetError` naming the fastest matching row when the budget is below
        it, :class:`UnknownDeviceError` for a device no row has.
        """
        try:
            budget = float(latency_ms)
        except (TypeError, ValueError):
            raise HubError(f'latency budget: got {latency_ms!r}; expected milliseconds') from None
        if not budget > 0:
            raise HubError(f'latency budget: got {latency_ms!r}; expected a positive number')
        own, kind = self.own_devices(device)
        rows = [
            e
            for e in self.list_models(**filters)
            if e.has_task_metric or (by_backbone_top1 and e.score is not None)
        ]
        given = ', '.join(f'{k}={v}' for k, v in filters.items() if v not in (None, [], False))
        mine = [e for e in rows if e.device.lower() in {d.lower() for d in own}]
        fell_back = False
        if not mine and kind is None:
            known = sorted({e.device for e in self.entries()})
            if own[0].lower() not in {d.lower() for d in known}:
                raise UnknownDeviceError(
                    f'device: got {device!r}; known devices: {", ".join(known)} '
                    "('cpu' / 'gpu' / none: this machine's)"
                )
        elif not mine:  # nothing measured here: the same kind of device elsewhere
            mine = [e for e in rows if device_kind(e.device) == kind]
            fell_back = True
        if not mine:
            hint = self._why_nothing(filters, by_backbone_top1)
            raise HubError(
                f'no hub entry with an accuracy figure matches device={device}'
                + (f', {given}' if given else '')
                + hint
            )
        within = [e for e in mine if e.latency_ms <= budget]
        if not within:
            fastest = min(mine, key=lambda e: (e.latency_ms, e.name))
            raise BudgetError(
                f'latency budget {budget:g} ms is below the fastest matching entry: '
                f'{fastest.name} at {fastest.latency_ms:g} ms ({fastest.target}, '
                f'{fastest.provenance.kind})'
            )
        winner = best(within)
        here = [d for d in self.here.values() if d]
        note = None
        if fell_back:
            note = (
                f'no row was measured on this machine ({", ".join(own)}): answered from '
                f'{winner.device}, another machine, whose latency differs from yours '
                '(measure yours: benchmarks/benchmark_hub.py --hub-file, or tools/hub.py add)'
            )
        elif winner.device.lower() not in {d.lower() for d in here}:
            note = f'measured on {winner.device}, not on this machine ({", ".join(here)})'
        return Answer(winner, own, note)

    def _why_nothing(self, filters: Mapping[str, Any], by_backbone_top1: bool) -> str:
        """What a failed query left out: caveated rows, detectors without their own mAP."""
        hints = []
        if not filters.get('include_toy'):
            n = len(self.list_models(**dict(filters, include_toy=True))) - len(
                self.list_models(**filters)
            )
            if n:
                hints.append(f'{n} row(s) with caveats are left out (--include-toy)')
        if not by_backbone_top1:
            proxy = [
                e
                for e in self.list_models(**filters)
                if not e.has_task_metric and e.backbone_top1 is not None
            ]
            if proxy:
                hints.append(
                    f'{len(proxy)} detection row(s) have no detection metric, only their '
                    "backbone's ImageNet top-1 (rank by it: by_backbone_top1=True, "
                    '--by-backbone-top1)'
                )
        return ('; ' + '; '.join(hints)) if hints else ''

    def query(self, device: Optional[str], latency_ms: float, **filters: Any) -> HubEntry:
        """The row of :meth:`answer`; an answer from another device than the one asked
        about (or this machine's) warns with :class:`OtherDeviceWarning`."""
        ans = self.answer(device, latency_ms, **filters)
        if ans.note:
            warnings.warn(ans.note, OtherDeviceWarning, stacklevel=2)
        return ans.entry

    def pareto(self, by_backbone_top1: bool = False, **filters: Any) -> List[HubEntry]:
        """Non-dominated rows (latency vs accuracy), per comparable target; filters as
        :meth:`list_models`. Detectors without their own metric only with
        ``by_backbone_top1``."""
        rows = self.list_models(**filters)
        if not by_backbone_top1:
            rows = [e for e in rows if e.has_task_metric]
        return pareto_front(rows)

    def remove(
        self,
        name: str,
        device: Optional[str] = None,
        backend: Optional[str] = None,
        provenance: Optional[str] = None,
    ) -> List[HubEntry]:
        """Remove the user hub file's rows of ``name`` (case-insensitive), narrowed by
        ``device`` / ``backend`` / ``provenance`` kind; returns the removed rows.

        The shipped rows are part of the package and are never removed; a name with no
        user row is an error that lists the names the user file holds.
        """

        def hit(e: HubEntry) -> bool:
            return (
                e.name.lower() == str(name).lower()
                and (device is None or device_matches(device, e.device))
                and (backend is None or e.backend == normalize_backend(backend))
                and (provenance is None or e.provenance.kind == provenance)
            )

        with locked(self.path):
            user = read_entries(self.path)
            gone = [e for e in user if hit(e)]
            if not gone:
                if any(hit(e) for e in self._shipped):
                    raise HubError(
                        f'{name!r}: only shipped rows match (they come with the package and '
                        'cannot be removed; a user row with their key shadows them)'
                    )
                names = sorted({e.name for e in user}, key=str.lower)
                raise HubError(
                    f'no row of {name!r} in {self.path} matches'
                    + ''.join(
                        f' {k}={v}'
                        for k, v in (
                            ('device', device),
                            ('backend', backend),
                            ('provenance', provenance),
                        )
                        if v is not None
                    )
                    + f'; its rows: {", ".join(names) or "none"}'
                )
            write_entries(self.path, [e for e in user if not hit(e)])
        return gone

    def get(self, name: str) -> List[HubEntry]:
        """Every row of the model ``name`` (case-insensitive), fastest first."""
        rows = [e for e in self.entries() if e.name.lower() == str(name).lower()]
        if not rows:
            names = self.names()
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
            hint = f'; did you mean {", ".join(close)}?' if close else ''
            raise HubError(f'no model named {name!r} in the hub{hint} known: {", ".join(names)}')
        return sorted(rows, key=lambda e: (e.device, e.backend, e.latency_ms))

    def get_config(self, name: str, out_file: Optional[str] = None):
        """A ready mmdet / mmpretrain config (``mmengine.Config``) of ``name``.

        Shipped tiers return their shipped config; search results get the shipped config of
        their task with ``backbone=dict(type='GPUNet', arch=...)``. ``out_file`` also
        writes it as a config file.
        """
        from .configs import config_for_entry

        rows = self.get(name)
        entry = next((e for e in rows if e.config), rows[0])
        cfg = config_for_entry(entry)
        if out_file:
            os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
            cfg.dump(out_file)
        return cfg

    # ------------------------------------------------------------------ writing
    def add(self, entry: EntryLike, replace: bool = False) -> HubEntry:
        """Add one row to the user hub file.

        Refused (:class:`NameConflictError`) unless ``replace``: a row with the same key
        (name, target, provenance kind) and other values, or the name of a different
        network. Names of shipped models are never given to another network. Adding an
        identical row again is a no-op.
        """
        return self.add_many([entry], replace=replace)[0]

    def add_many(self, entries: Iterable[EntryLike], replace: bool = False) -> List[HubEntry]:
        new = [e if isinstance(e, HubEntry) else HubEntry.from_dict(e) for e in entries]
        with locked(self.path):
            user = self.user_entries()  # a malformed file raises here: never overwritten
            shipped = {e.key: e for e in self._shipped}
            changed = False
            for entry in new:
                user, did = self._merge_one(entry, user, shipped, replace)
                changed |= did
            if changed:
                write_entries(self.path, user)
        return new

    def _merge_one(
        self,
        entry: HubEntry,
        user: List[HubEntry],
        shipped: Dict[str, HubEntry],
        replace: bool,
    ) -> Tuple[List[HubEntry], bool]:
        name = entry.name.lower()
        for e in shipped.values():
            if e.name.lower() == name and e.model_identity != entry.model_identity:
                raise NameConflictError(
                    f'{entry.name!r} is a shipped model with another network '
                    f'({e.task}, arch {e.arch_hash}); choose another name'
                )
        others = [
            e for e in user if e.name.lower() == name and e.model_identity != entry.model_identity
        ]
        if others and not replace:
            raise NameConflictError(
                f'{entry.name!r} already names another network in {self.path} '
                f'({others[0].task}, arch {others[0].arch_hash}); pass replace=True '
                '(--replace) to drop its rows, or choose another name'
            )
        existing = next((e for e in user if e.key == entry.key), None) or shipped.get(entry.key)
        if existing is not None and existing.to_dict() == entry.to_dict():
            return user, False
        if existing is not None and not replace:
            raise NameConflictError(
                f'{entry.name!r} already has a {entry.provenance.kind} row for {entry.target} '
                f'{entry.input_shape[0]}x{entry.input_shape[1]} '
                f'({existing.latency_ms:g} ms); pass replace=True (--replace) to overwrite it'
            )
        kept = [e for e in user if e.key != entry.key and e not in others]
        return kept + [entry], True

    def import_search(
        self,
        work_dir: str,
        include_pareto: bool = False,
        replace: bool = False,
        device: Optional[str] = None,
        allow_simulated: bool = False,
    ) -> List[HubEntry]:
        """Add a NAS run's winners (and optionally its Pareto trials); see
        :mod:`gpunet_mm.hub.search_import` for the ``results.json`` schema. ``device``
        names the machine when the run's target says only ``'cpu'`` or ``'cuda'``."""
        from .search_import import search_entries

        rows = search_entries(work_dir, include_pareto, device, allow_simulated)
        return self.add_many(rows, replace=replace)


def check_names(rows: Sequence[HubEntry], shipped: Sequence[HubEntry], path: str) -> None:
    """What ``add`` promises, enforced on read too (a hand-edited file must not change the
    answers for a shipped name, nor silently keep one of two rows)."""
    shipped_ids = {e.name.lower(): e for e in shipped}
    seen_ids: Dict[str, HubEntry] = {}
    seen_keys = set()
    for e in rows:
        name = e.name.lower()
        ref = shipped_ids.get(name)
        if ref is not None and ref.model_identity != e.model_identity:
            raise HubError(
                f'{path}: row {e.name!r} takes the name of a shipped model for another network '
                f'(arch {e.arch_hash}, task {e.task}; the shipped {ref.name} is arch '
                f'{ref.arch_hash}, task {ref.task}); shipped names are never given to another '
                'network: rename the row (the file was left as it is)'
            )
        first = seen_ids.setdefault(name, e)
        if first.model_identity != e.model_identity:
            raise HubError(
                f'{path}: two rows named {e.name!r} describe different networks (arch '
                f'{first.arch_hash} and {e.arch_hash}); one name names one network: rename '
                'one of them (the file was left as it is)'
            )
        if e.key in seen_keys:
            raise HubError(
                f'{path}: two rows for {e.name!r} on {e.target} '
                f'{e.input_shape[0]}x{e.input_shape[1]} ({e.provenance.kind}); one would '
                'silently win: remove one (the file was left as it is)'
            )
        seen_keys.add(e.key)


def _conditions(conditions: ConditionsLike) -> List[Condition]:
    if not conditions:
        return []
    if isinstance(conditions, str):
        return parse_conditions(conditions)
    items = list(conditions)
    if all(isinstance(c, Condition) for c in items):
        return items
    return parse_conditions([str(c) for c in items])
