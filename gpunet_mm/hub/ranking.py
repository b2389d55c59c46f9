"""Ranking rules of the hub: "most accurate within budget" and the Pareto front.

Score: the row's task metric (top-1 for classifiers, bbox mAP for detectors). A detector
without a measured mAP (no COCO training here) is scored by its backbone's published
ImageNet top-1 (``backbone_top1``), and results say so. The two are never mixed: rows with a
task metric rank above rows that only have the backbone proxy, and Pareto fronts are built
separately for each basis.

Ties on score go to the lower latency, then to fewer parameters, then by name (so the answer
is deterministic).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

from ..pareto import pareto_front as front
from .entry import HubEntry


def rank_key(e: HubEntry) -> Tuple:
    params = e.params if e.params is not None else float('inf')
    return (not e.has_task_metric, -(e.score or 0.0), e.latency_ms, params, e.name)


def best(entries: Sequence[HubEntry]) -> HubEntry:
    return min(entries, key=rank_key)


def group_key(e: HubEntry) -> Tuple:
    """Rows whose latencies compare: same task, device, backend, precision, batch, detector."""
    return (e.task, e.device, e.backend, e.precision, e.batch, e.detector or '', e.score_basis)


def pareto_front(entries: Sequence[HubEntry]) -> List[HubEntry]:
    """Non-dominated rows of each comparable group (lower latency, higher score), by latency.

    A row is dominated when another row of its group is at least as fast and at least as
    accurate, and strictly better in one of the two. Rows without a score are left out.
    """
    groups: Dict[Tuple, List[HubEntry]] = defaultdict(list)
    for e in entries:
        if e.score is not None:
            groups[group_key(e)].append(e)
    out: List[HubEntry] = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        out += front(
            groups[key],
            latency=lambda e: e.latency_ms,
            score=lambda e: e.score,
            tiebreak=lambda e: (e.params or 0, e.name),
        )
    return out
