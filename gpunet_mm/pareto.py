"""The latency/accuracy Pareto front: one rule for the hub's rankings and the search report.

An item is on the front when no other item is at least as fast and at least as accurate and
strictly better in one of the two. Sorted by latency (then higher score, then the caller's
tie-break), an item is kept only if it beats the score of every faster one, so the front
comes out fastest first, each item more accurate than the one before.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, TypeVar

T = TypeVar('T')


def pareto_front(
    items: Iterable[T],
    latency: Callable[[T], float],
    score: Callable[[T], float],
    tiebreak: Callable[[T], Any] = lambda _: 0,
) -> List[T]:
    """The non-dominated ``items`` (lower ``latency``, higher ``score``), fastest first.

    Among items of equal latency and score the one ``tiebreak`` orders first is kept. The
    caller leaves out items without a latency or a score.
    """
    ordered = sorted(items, key=lambda t: (latency(t), -score(t), tiebreak(t)))
    front: List[T] = []
    best = float('-inf')
    for t in ordered:
        if score(t) > best:
            front.append(t)
            best = score(t)
    return front
