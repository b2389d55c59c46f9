"""The last line of tools/nas_search.py: what was found, against GPUNet-0 from the same run."""

from gpunet_mm.search import report

REF = dict(trial_id=1, arch_hash='aaaa', latency_ms=16.0, metric=0.140, status='complete')


def _summary(best):
    return dict(metric='coco/bbox_mAP', best_per_budget=best, references={'GPUNet-0': REF})


def test_a_searched_winner_is_compared_with_the_reference():
    w = dict(trial_id=4, arch_hash='bbbb', latency_ms=12.0, metric=0.152, origin='optimizer:0')
    line = report.final_line(_summary({'17.6': w, '10': None}))
    assert line.startswith('FOUND 17.6 ms: bbbb at 12.000 ms, coco/bbox_mAP 0.1520 (trial 4')
    assert '= +0.0120 coco/bbox_mAP at 0.75x the latency of GPUNet-0' in line
    assert '10 ms: nothing trained within budget' in line
    assert line.endswith('| GPUNet-0 in the same run: 16.000 ms, coco/bbox_mAP 0.1400')


def test_the_reference_winning_is_said_plainly():
    w = dict(REF, origin='reference:GPUNet-0')
    line = report.final_line(_summary({'17.6': w}))
    assert '(trial 1, reference:GPUNet-0) = GPUNet-0 itself: no searched candidate' in line
    assert 'x the latency' not in line


def test_without_references_the_winner_stands_alone():
    w = dict(trial_id=4, arch_hash='bbbb', latency_ms=12.0, metric=0.152, origin='optimizer:0')
    line = report.final_line(dict(metric='accuracy/top1', best_per_budget={'2': w}))
    assert line == 'FOUND 2 ms: bbbb at 12.000 ms, accuracy/top1 0.1520 (trial 4, optimizer:0)'


# --------------------------------------------------------------------------- Pareto neighbours
class _T:
    """A journal trial as the report reads it."""

    def __init__(self, id, latency_ms, metric, status='complete'):
        self.id, self.latency_ms, self.metric, self.status = id, latency_ms, metric, status
        self.arch_hash = f'h{id}'


def test_pareto_neighbours_of_the_winner():
    from gpunet_mm.search.report import pareto_neighbours

    trials = [
        _T(1, 16.0, 0.140),  # the winner under 17 ms
        _T(2, 12.5, 0.137),  # 0.78x the latency, -0.003: within one point
        _T(3, 10.0, 0.120),  # faster still, but 2 points worse
        _T(4, 15.0, 0.100),  # dominated
        _T(5, 20.0, 0.200),  # over the budget
        _T(6, 11.0, 0.300, status='failed'),
    ]
    nb = pareto_neighbours(trials, trials[0], 17.0)
    assert nb['tolerance'] == 0.01
    near = nb['fastest_near_best']
    assert near['trial_id'] == 2 and near['latency_ratio'] == 0.7812
    assert near['metric_delta'] == -0.003
    assert nb['next_faster'] is None  # the next faster front trial is trial 2 itself
    # without trial 2 the fastest near the best is the winner itself; next faster is 3
    nb = pareto_neighbours([t for t in trials if t.id != 2], trials[0], 17.0)
    assert nb['fastest_near_best'] is None
    assert nb['next_faster']['trial_id'] == 3 and nb['next_faster']['metric_delta'] == -0.02
    # top-1 in percent: one point is 1.0
    pct = [_T(1, 2.0, 80.0), _T(2, 1.5, 79.2)]
    assert pareto_neighbours(pct, pct[0], 2.0)['fastest_near_best']['trial_id'] == 2


def test_the_last_line_shows_the_neighbours():
    w = dict(
        trial_id=1, arch_hash='aaaa', latency_ms=16.0, metric=0.140, origin='reference:GPUNet-0'
    )
    nb = dict(
        tolerance=0.01,
        fastest_near_best=dict(
            trial_id=2, arch_hash='bbbb', latency_ms=12.5, metric=0.137,
            latency_ratio=0.78, metric_delta=-0.003,
        ),
        next_faster=None,
    )  # fmt: skip
    summary = dict(_summary({'17': w}), neighbours={'17': nb})
    line = report.final_line(summary)
    assert (
        '[fastest within 0.01 coco/bbox_mAP: bbbb (trial 2) at 0.78x the latency, '
        '-0.0030 coco/bbox_mAP]' in line
    )
    assert 'GPUNet-0 itself' in line


def test_all_failed_and_the_summary_table(tmp_path):
    from gpunet_mm.search.report import summary_table

    assert report.all_failed(dict(trials_by_status=dict(complete=3, failed=2))) is None
    assert report.all_failed(dict(trials_by_status=dict(infeasible=4))) is None
    msg = report.all_failed(dict(trials_by_status=dict(failed=5, infeasible=1)))
    assert msg.startswith('every trial failed (5): no result')
    w = dict(trial_id=4, arch_hash='bbbb', latency_ms=12.0, metric=0.152, origin='optimizer:0')
    s = dict(_summary({'17.6': w, '10': None}), trials_by_status=dict(complete=3), mode='train')
    table = summary_table(s, str(tmp_path)).splitlines()
    assert table[0].split() == ['budget', 'winner', 'trial', 'origin', 'latency', 'coco/bbox_mAP']
    assert table[2].split() == ['17.6', 'ms', 'bbbb', '4', 'optimizer:0', '12.000', 'ms', '0.1520']
    assert 'nothing trained within budget' in table[3]
    assert table[4].split()[:3] == ['reference', 'GPUNet-0', '1']
    assert table[-2] == 'trials: complete 3'
    assert '{' not in '\n'.join(table)  # a table, not the summary's JSON
