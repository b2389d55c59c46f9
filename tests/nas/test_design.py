"""The first design (issue 13): priors from the tiers, feasible by construction, spread."""

import numpy as np
import pytest

from gpunet_mm.models.tiers import TIERS
from gpunet_mm.nas import GPUNetSpace, InfeasibleSpaceError, LaMCTSBO, build_optimizer
from gpunet_mm.nas.lamcts import tier_priors
from gpunet_mm.nas.latency_proxy import latency_proxy
from gpunet_mm.nas.objectives import make_problem

from .paired import assert_paired_wins

FAST = dict(n_candidates=200, gp_max_points=40)


class CountingCost:
    """The latency proxy on points of a space, counting its calls."""

    def __init__(self, space):
        self.space, self.calls = space, 0

    def __call__(self, x):
        self.calls += 1
        return latency_proxy(self.space.decode(x))


@pytest.mark.parametrize('budget', [0.5, 1.0, 2.0])
def test_tier_priors_are_feasible_after_projection(budget):
    space = GPUNetSpace()
    cost = CountingCost(space)
    pts = tier_priors(space)
    assert len(pts) == len(TIERS)
    for tier, x in zip(TIERS, pts):
        assert space.contains(x)
        arch = space.decode(x)  # a valid architecture of the space
        assert abs(arch.resolution - tier.resolution) <= 16 or arch.resolution in (224, 512)
        y = space.project_to_budget(x, cost, budget)
        assert y is not None and space.contains(y)
        assert cost(y) <= budget
        # projected onto the boundary, not somewhere deep inside it
        assert cost(y) >= 0.6 * budget, (tier.name, cost(y))


def test_projection_keeps_the_tier_shape():
    space = GPUNetSpace()
    g2 = space.decode(space.project(TIERS[2]))  # GPUNet-2 is in the paper's space
    rows = {r.stage: r for r in g2.rows}
    assert g2.resolution == 384
    assert rows[4].num == 6 and rows[6].num == 8 and rows[7].num == 7
    assert rows[7].out_channels == 832 and rows[7].kernel == 5 and rows[6].se


def test_initial_design_is_feasible_without_repair_loops():
    space = GPUNetSpace()
    cost = CountingCost(space)
    design = space.feasible_design(12, np.random.default_rng(0), cost, 1.0)
    assert design.shape == (12, space.dims)
    assert len({space.key(x) for x in design}) == 12
    assert all(cost(x) <= 1.0 for x in design)
    # bounded work: a pool of 8 * 12 points, at most ~11 cost calls each (no rejection loop)
    assert cost.calls <= 8 * 12 * 12 + 12
    # a budget just above the smallest architecture: still no spinning
    tight = latency_proxy(space.smallest()) * 1.05
    cost.calls = 0
    design = space.feasible_design(5, 1, cost, tight)
    assert len(design) >= 1 and all(cost(x) <= tight for x in design)
    assert cost.calls <= 8 * 16 * 12 + 10
    with pytest.raises(InfeasibleSpaceError, match='not even the smallest'):
        space.feasible_design(5, 1, cost, latency_proxy(space.smallest()) * 0.5)


def test_design_is_spread_and_near_the_budget():
    space = GPUNetSpace()
    cost = CountingCost(space)
    design = space.feasible_design(10, np.random.default_rng(0), cost, 1.0)
    rand = space.sample_feasible(10, np.random.default_rng(0), cost, 1.0)

    def min_dist(X):
        U = space.to_unit(X)
        d = np.linalg.norm(U[:, None] - U[None], axis=2)
        return d[np.triu_indices(len(U), 1)].min()

    assert min_dist(design) > min_dist(rand)
    # half the pool is grown to the boundary: the design is not all deep inside
    assert np.median([cost(x) for x in design]) > np.median([cost(x) for x in rand])


def test_lamcts_design_uses_priors_and_shrinks_the_random_part():
    space = GPUNetSpace()
    kw = dict(seed=0, minimize=False, constraint_fn=latency_proxy, budget=1.0, **FAST)
    opt = LaMCTSBO(space, **kw)
    cost = opt.predicted_cost
    expected = {space.key(space.project_to_budget(x, cost, 1.0)) for x in tier_priors(space)}
    keys = [t.key for t in opt.ask(10)]
    assert expected <= set(keys)  # every projected tier is tried first
    assert len(set(keys) - expected) == 10 - len(expected)  # the rest: the spread part
    assert all(t.predicted_cost <= 1.0 for t in opt.trials)
    # without priors the whole design is the spread
    plain = LaMCTSBO(space, priors='none', **kw)
    assert not {t.key for t in plain.ask(10)} & expected
    with pytest.raises(ValueError, match='priors'):
        LaMCTSBO(space, priors='paper', **kw)


def test_warm_start_trials_are_projected_onto_the_new_budget():
    space = GPUNetSpace()
    rng = np.random.default_rng(3)
    opt = LaMCTSBO(
        space,
        seed=0,
        minimize=False,
        constraint_fn=latency_proxy,
        budget=0.8,
        priors='none',
        n_prior_trials=2,
        **FAST,
    )
    # an earlier search at a looser budget: its best results are over this one
    cost = opt.predicted_cost
    old = space.feasible_design(6, rng, cost, 1.5)
    for i, x in enumerate(old):
        opt.add_trial(space.decode(x), float(i), cost=float(cost(x)))
    best_two = [old[5], old[4]]
    proposed = {t.key for t in opt.ask(4)}
    for x in best_two:
        want = space.project_to_budget(x, cost, opt.effective_budget)
        assert space.key(want) in proposed
    assert all(t.predicted_cost <= 0.8 for t in opt.trials if t.ask_index >= 0)


def test_line_to_budget_stops_at_the_boundary_between_two_points():
    space = GPUNetSpace()
    cost = CountingCost(space)
    rng = np.random.default_rng(5)
    inside = space.feasible_design(1, rng, cost, 0.6)[0]
    outside = space.corner(inside, upper=True)
    assert cost(inside) <= 0.8 < cost(outside)
    cost.calls = 0
    p = space.line_to_budget(inside, outside, cost, 0.8, steps=8)
    assert cost.calls <= 9 + 1 and cost(p) <= 0.8
    # on the segment: every ordered dim between the two ends
    lo, hi = np.minimum(inside, outside), np.maximum(inside, outside)
    assert np.all((p >= lo) & (p <= hi))
    # at the boundary: a little further along the line no longer fits
    t = np.max(np.abs(p - inside) / np.maximum(np.abs(outside - inside), 1))
    assert cost(space.interpolate(inside, outside, min(1.0, t + 0.05))) > 0.8 * 0.97


def test_model_based_proposals_sit_near_the_budget():
    p = make_problem('gpunet-surrogate')
    opt = build_optimizer(
        dict(type='LaMCTSBO', **FAST),
        p.space,
        seed=0,
        minimize=False,
        constraint_fn=p.constraint_fn,
        budget=p.budget,
    )
    ratios = []
    while opt.n_told < 40:
        for t in opt.ask(1):
            if t.id >= 10:
                ratios.append(t.predicted_cost / opt.effective_budget)
            v, c = p.evaluate(t.obj)
            opt.tell(t, v, cost=c)
    assert max(ratios) <= 1.0
    assert np.median(ratios) > 0.95  # random feasible points: a median of about 0.90


def seeded_best(method, seeds, n=30, **options):
    p = make_problem('gpunet-surrogate')
    out = []
    for s in seeds:
        opt = build_optimizer(
            dict(type=method, **options),
            p.space,
            seed=s,
            minimize=False,
            constraint_fn=p.constraint_fn,
            budget=p.budget,
        )
        while opt.n_told < n:
            for t in opt.ask(1):
                v, c = p.evaluate(t.obj)
                opt.tell(t, v, cost=c)
        done = [t.value for t in opt.trials if t.status == 'complete']
        out.append(max(done))
    return out


def test_lamcts_beats_random_at_30_trials_on_the_surrogate():
    """10 seeds, paired: LA-MCTS finds the better architecture on >= 8 of them."""
    seeds = range(10)
    ours, theirs = seeded_best('lamcts', seeds, **FAST), seeded_best('random', seeds)
    assert_paired_wins(ours, theirs, minimize=False, min_wins=8)
