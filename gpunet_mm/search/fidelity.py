"""Multi-fidelity search: rungs, ASHA promotion and the rung the optimisers learn from.

A candidate first trains the shortest rung of the proxy schedule (``min_epochs``); the best
``1/eta`` of each rung, per latency budget, are promoted to the next rung and continue from
their last checkpoint, up to the full proxy schedule. Promotion is asynchronous, as in ASHA
(Li et al., 2020): whenever a worker is free, a candidate that is in the top ``1/eta`` of
the results its rung holds *so far* is promoted; no worker waits for a rung to fill.

Everything here is pure: the facts (which rung each trial reached, its metric there, which
promotions were decided) live in the journal, and the controller asks these functions what
to do with them. The optimisers never see a rung: before each ``ask`` the controller hands
them the points and values of one rung (BOHB's rule: the highest rung that holds at least
``min_observations`` results), so a model is never fitted on numbers from different
schedules.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..schema import FidelitySettings, FinalSettings, SchemaError, defaults, validate
from .continuation import schedule_epochs
from .trainer import SearchConfigError

#: ``nas.fidelity`` keys and their defaults (``min_epochs`` is required; ``None`` for the
#: whole dict: no rungs); declared, typed and range-checked in
#: :class:`gpunet_mm.schema.FidelitySettings`
FIDELITY_DEFAULTS: Dict[str, Any] = defaults(FidelitySettings)
#: ``nas.final`` keys and their defaults (:class:`gpunet_mm.schema.FinalSettings`)
FINAL_DEFAULTS: Dict[str, Any] = defaults(FinalSettings)
#: epochs of the full proxy schedule in ``--simulate`` when the config names none
SIMULATE_EPOCHS = 8


@dataclass(frozen=True)
class Rungs:
    """The rungs of one search: ``epochs[k]`` is the epoch count rung ``k`` ends at."""

    epochs: Tuple[int, ...]
    eta: int
    min_observations: int
    model: str = 'rung'
    final_stretch: bool = True

    @property
    def last(self) -> int:
        return len(self.epochs) - 1

    def cost(self, rung: int) -> int:
        """Epochs an attempt at ``rung`` adds (a continuation counts only what it adds)."""
        return self.epochs[rung] - (self.epochs[rung - 1] if rung else 0)

    def to_top(self, rung: int) -> int:
        """Epochs from the end of ``rung`` (-1: before the first) to the end of the last."""
        return self.epochs[-1] - (self.epochs[rung] if rung >= 0 else 0)

    def promotable(
        self,
        results: Sequence[Mapping[str, Any]],
        promoted: set,
        budgets: Sequence[float],
        always: set = frozenset(),
        stretch: bool = False,
    ) -> List[Tuple[int, int]]:
        """``(trial_id, next rung)`` that may be promoted now, the most urgent first.

        ``results``: every rung result (``trial_id``, ``rung``, ``metric``, ``latency_ms``);
        ``promoted``: ``(trial_id, rung)`` promotions already decided. A result of rung ``k``
        is promotable when it ranks in the top ``floor(n / eta)`` of the ``n`` results rung
        ``k`` holds among the candidates within some budget (ranked by metric, then lower
        latency, then the older trial: ties resolve the same way on every call). Trials in
        ``always`` (the reference tiers) climb every rung, so the comparison with them is
        at the same schedule. Higher rungs go first (ASHA): the sooner a candidate reaches
        the full schedule, the sooner the search has a result to report. Within a rung the
        budgets take turns (each one's best, then each one's second, ...).

        ``stretch`` (the final stretch of a compute budget, when no new candidate could
        reach the top rung any more): every result below the top is promotable in the same
        order, not only the top ``1/eta``. What is left then buys more full-schedule results
        among the best candidates known, where a new first-rung start would buy a number
        that can never win (the winner is chosen at the top rung).

        """

        by_rung: Dict[int, List[Mapping[str, Any]]] = {}
        for r in results:
            if r['metric'] is not None and r['rung'] < self.last:
                by_rung.setdefault(int(r['rung']), []).append(r)
        out: List[Tuple[int, int]] = []
        for k in sorted(by_rung, reverse=True):
            rows = by_rung[k]
            # trial -> (its best place in a budget's order, -value, id): the sort key
            chosen: Dict[int, Tuple[int, float, int]] = {}
            ranked: List[Tuple[Mapping[str, Any], int]] = []
            for b in budgets:
                within = [r for r in rows if r['latency_ms'] is not None and r['latency_ms'] <= b]
                within.sort(key=lambda r: (-r['metric'], r['latency_ms'], r['trial_id']))
                quota = len(within) if stretch else len(within) // self.eta
                ranked += [(r, pos) for pos, r in enumerate(within[:quota])]
            ranked += [(r, 0) for r in rows if r['trial_id'] in always]
            for r, pos in ranked:
                key = (pos, -float(r['metric']), int(r['trial_id']))
                chosen[r['trial_id']] = min(chosen.get(r['trial_id'], key), key)
            for tid, _key in sorted(chosen.items(), key=lambda kv: kv[1]):
                if (tid, k + 1) not in promoted:
                    out.append((tid, k + 1))
        return out

    def model_rung(self, counts: Mapping[int, int]) -> int:
        """The highest rung with at least ``min_observations`` results (BOHB), else 0."""
        ok = [k for k, n in counts.items() if n >= self.min_observations]
        return max(ok, default=0)

    def model_values(self, by_rung: Mapping[int, Mapping[str, float]], k: int) -> Dict[str, float]:
        """The values the optimisers model at rung ``k``: that rung's (``model='rung'``),
        plus, with ``model='offset'``, every point that stopped below it, shifted by the
        median gain from its last rung to ``k`` among the points that trained both."""
        out = dict(by_rung.get(k, {}))
        if self.model != 'offset':
            return out
        for j in range(k - 1, -1, -1):
            lower = by_rung.get(j, {})
            both = [out_k - lower[p] for p, out_k in by_rung.get(k, {}).items() if p in lower]
            if not both:
                continue
            gain = float(sorted(both)[len(both) // 2])
            for p, v in lower.items():
                out.setdefault(p, v + gain)
        return out


def fidelity_settings(fid: Mapping[str, Any]) -> Dict[str, Any]:
    """``nas.fidelity`` with its defaults, checked by its schema (types, ranges, unknown
    keys; a caller may hand it the user's dict as it is)."""
    try:
        return validate(FidelitySettings, fid, 'nas.fidelity').model_dump()
    except SchemaError as e:
        raise SearchConfigError(str(e)) from None


def full_epochs(cfg: Mapping[str, Any], nas: Mapping[str, Any], simulate: bool) -> Optional[int]:
    """Epochs of the full proxy schedule: ``nas.fidelity.max_epochs``, else the base
    config's ``train_cfg.max_epochs``, else (``--simulate`` only) :data:`SIMULATE_EPOCHS`."""
    fid = nas.get('fidelity') or {}
    if fid.get('max_epochs') is not None:
        return fid['max_epochs']
    tc = cfg.get('train_cfg') or {}
    if isinstance(tc, Mapping) and tc.get('max_epochs') is not None:
        return tc['max_epochs']
    return SIMULATE_EPOCHS if simulate else None


def _int(key: str, v: Any, lo: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise SearchConfigError(f'{key}: got {v!r}; allowed: integers >= {lo}')
    return v


def make_rungs(fid: Mapping[str, Any], max_epochs: Optional[int]) -> Rungs:
    """The rungs ``min_epochs * eta**k`` below ``max_epochs``, then ``max_epochs`` itself.

    Only what needs the schedule is checked here (the rest is the schema's)."""
    fid = fidelity_settings(fid)
    lo, eta = fid['min_epochs'], fid['eta']
    if max_epochs is None:
        raise SearchConfigError(
            'nas.fidelity: the full proxy schedule is unknown; set train_cfg.max_epochs '
            '(an epoch-based loop) or nas.fidelity.max_epochs'
        )
    hi = _int('nas.fidelity.max_epochs (the full proxy schedule)', max_epochs, 1)
    if lo * eta > hi:
        raise SearchConfigError(
            f'nas.fidelity.min_epochs: got {lo} with eta {eta} and a full schedule of {hi} '
            f'epochs: that leaves one rung (nothing to promote); allowed: min_epochs <= '
            f'{hi // eta} (full schedule / eta)'
        )
    epochs, e = [], lo
    while e < hi:
        epochs.append(e)
        e *= eta
    if hi - epochs[-1] < max(1, epochs[-1] // 2) and len(epochs) > 1:
        # a last step of a few epochs ranks nothing new: merge it into the full schedule
        epochs.pop()
    epochs.append(hi)
    return Rungs(
        tuple(epochs), eta, int(fid['min_observations']), fid['model'], fid['final_stretch']
    )


def load_objective(path: Any) -> Callable[[Dict[str, Any], float, int], float]:
    """``'package.module:function'`` -> the function, checked to take ``(arch, epochs,
    seed)`` (``arch`` as ``GPUNetArch.to_dict()``)."""
    key = 'nas.simulate.objective'
    if not isinstance(path, str) or ':' not in path:  # the schema's check, for direct callers
        raise SearchConfigError(f"{key}: got {path!r}; allowed: 'package.module:function'")
    mod_name, _, fn_name = path.partition(':')
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:  # ImportError and whatever the module raises on import
        raise SearchConfigError(
            f'{key}: module {mod_name!r} does not import ({type(e).__name__}: {e})'
        ) from e
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise SearchConfigError(f'{key}: {mod_name!r} has no function {fn_name!r}')
    try:
        inspect.signature(fn).bind({}, 1.0, 0)
    except TypeError as e:
        raise SearchConfigError(
            f'{key}: {path} cannot be called as function(arch: dict, epochs: float, '
            f'seed: int) ({e})'
        ) from e
    except ValueError:  # a builtin without a signature: trust it
        pass
    return fn


def check_settings(cfg: Mapping[str, Any], nas: Mapping[str, Any], simulate: bool) -> None:
    """The checks of the multi-fidelity keys (``nas.fidelity``, ``nas.compute_budget``,
    ``nas.simulate.objective``) that need the base config or the environment, before
    anything trains. Types, ranges and unknown keys are the schema's
    (:class:`gpunet_mm.schema.NasSettings`), checked before this by ``nas_settings``."""
    fid = nas.get('fidelity')
    rungs = None
    if fid is not None:
        if not simulate:
            # the one check that a schedule can stop at a rung and resume (the workers cut
            # and resume it with the same rules): continuation owns it
            proxy = schedule_epochs(cfg)
            top = fid.get('max_epochs')
            if top is not None and not isinstance(top, bool) and isinstance(top, int):
                if top > proxy:
                    raise SearchConfigError(
                        f'nas.fidelity.max_epochs: got {top}, above the schedule the '
                        f'candidates train (train_cfg.max_epochs={proxy}); allowed: <= {proxy} '
                        '(or raise train_cfg.max_epochs)'
                    )
        rungs = make_rungs(fid, full_epochs(cfg, nas, simulate))
    budget = nas.get('compute_budget')
    if budget is not None:
        first = rungs.epochs[0] if rungs else full_epochs(cfg, nas, simulate)
        if first is None:
            raise SearchConfigError(
                'nas.compute_budget: the epochs of one training are unknown; set '
                'train_cfg.max_epochs (an epoch-based loop)'
            )
        if budget < first:
            raise SearchConfigError(
                f'nas.compute_budget: got {budget!r} epochs, smaller than one '
                f'{"rung" if rungs else "training"} ({first} epochs); allowed: >= {first}'
            )
        refs = list(nas.get('references') or [])
        need = (len(refs) + 1) * rungs.epochs[-1] if rungs and refs else 0
        if budget < need:
            # the references climb every rung on compute kept for them from the start, and
            # a candidate compares with them only at the top rung
            raise SearchConfigError(
                f'nas.compute_budget: got {budget!r} epochs; the reference tier(s) {refs} '
                f'train every rung ({rungs.epochs[-1]} epochs each) and at least one '
                f'candidate must be able to as well; allowed: >= {need} (or fewer '
                'nas.references)'
            )
    obj = (nas.get('simulate') or {}).get('objective')
    if obj is not None:
        load_objective(obj)


def rungs_of(cfg: Mapping[str, Any], nas: Mapping[str, Any], simulate: bool) -> Optional[Rungs]:
    fid = nas.get('fidelity')
    return None if fid is None else make_rungs(fid, full_epochs(cfg, nas, simulate))
