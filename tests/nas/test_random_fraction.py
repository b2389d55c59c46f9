"""BOHB's random fraction in LA-MCTS-BO (``random_fraction``; a multi-fidelity search sets it
from ``nas.fidelity.random_fraction``): the share is honoured, the random proposals are
feasible and drawn from the space (not the model), and the default changes nothing."""

import math

import numpy as np
import pytest

from gpunet_mm.nas import GPUNetSpace, LaMCTSBO
from gpunet_mm.nas.latency_proxy import latency_proxy

FAST = dict(n_candidates=200, gp_max_points=40, n_init=6, priors='none')


def _run(f, n=40, batch=3, seed=0, budget=None):
    space = GPUNetSpace(variant='classification')
    kw = {} if budget is None else dict(constraint_fn=latency_proxy, budget=budget)
    opt = LaMCTSBO(space, seed=seed, minimize=False, random_fraction=f, **FAST, **kw)
    rng = np.random.default_rng(seed)
    asked = []
    while opt.n_told < n:
        for t in opt.ask(batch):
            asked.append(t)
            opt.tell(t, float(rng.normal()))  # pure noise: what a short rung can look like
    return opt, asked


@pytest.mark.parametrize('f', [1 / 3, 0.5, 1.0])
def test_the_random_share_of_model_based_proposals_is_honoured(f):
    opt, asked = _run(f)
    model_phase = [t.id for t in asked if t.id >= opt._design_end]
    n_random = len(opt.random_ids)
    assert set(opt.random_ids) <= set(model_phase)
    # the share is exact up to one over any run of consecutive ids
    assert abs(n_random - f * len(model_phase)) <= 1, (n_random, len(model_phase))
    # and it is the rule the docstring states, so a resumed search draws the same slots
    assert opt.random_ids == [i for i in model_phase if opt.is_random_slot(i)]


def test_no_random_share_by_default_and_zero_draws_none():
    space = GPUNetSpace(variant='classification')
    assert LaMCTSBO(space).random_fraction == 0.0
    opt, asked = _run(0.0, n=24)
    assert opt.random_ids == [] and not any(opt.is_random_slot(i) for i in range(1000))


def test_random_proposals_stay_feasible_and_differ_from_the_model_ones():
    budget = 2.5
    opt, asked = _run(1 / 3, n=45, budget=budget)
    assert all(t.predicted_cost <= budget for t in asked)
    assert len({t.key for t in asked}) == len(asked)
    # the model's proposals stay near its incumbents (trust region); the random ones are
    # spread over the space: their mean distance to the others is larger
    X = np.array([t.x for t in asked], dtype=float)
    F = opt.space.features(X)
    rand = [i for i, t in enumerate(asked) if t.id in set(opt.random_ids)]
    model = [i for i, t in enumerate(asked) if t.id >= opt._design_end and i not in rand]
    assert rand and model

    def spread(idx):
        return float(np.mean([np.linalg.norm(F[i] - F, axis=1).mean() for i in idx]))

    assert spread(rand) > spread(model)


@pytest.mark.parametrize('bad', [-0.1, 1.5, math.nan, 'third', True])
def test_a_bad_random_fraction_is_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match=r'random_fraction: got .*; allowed: a number in \[0, 1\]'):
        LaMCTSBO(GPUNetSpace(variant='classification'), random_fraction=bad)
