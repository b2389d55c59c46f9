"""A paired seed-by-seed comparison, so "beats random" claims can fail for the right reason.

A median over two or three seeds lets one lucky run decide. Here both methods run on the
same seeds, and the claim holds only if the method wins on a clear majority of them *and*
its median is better. With 10 seeds and at least 8 wins, a method no better than the
other (a coin flip per seed) passes about 5 % of the time.
"""

from typing import Sequence

import numpy as np


def assert_paired_wins(
    ours: Sequence[float],
    theirs: Sequence[float],
    minimize: bool,
    min_wins: int,
    what: str = 'LA-MCTS vs random',
) -> None:
    """``ours[i]`` and ``theirs[i]`` come from seed ``i``; ties count as losses."""
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    assert a.shape == b.shape and len(a) >= min_wins, (a, b)
    sign = -1.0 if minimize else 1.0
    wins = int(np.sum(sign * (a - b) > 0))
    report = f'{what}: {wins}/{len(a)} seeds won; ours {a.tolist()}, theirs {b.tolist()}'
    assert wins >= min_wins, report
    assert sign * (np.median(a) - np.median(b)) > 0, report
