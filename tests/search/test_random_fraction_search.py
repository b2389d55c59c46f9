"""``nas.fidelity.random_fraction``: a multi-fidelity search hands BOHB's random share to
LA-MCTS-BO; bad or contradicting values are refused before anything runs."""

import copy

import pytest

from gpunet_mm.search import LocalExecutor
from gpunet_mm.search.api import run_search, with_random_fraction
from gpunet_mm.search.trainer import SearchConfigError

from .conftest import FakeLatency, rung_trainer


def _cfg(sim_cfg, opt=None, **fid):
    cfg = copy.deepcopy(sim_cfg)
    cfg['nas']['fidelity'] = dict(min_epochs=1, eta=3, max_epochs=9, **fid)
    cfg['train_cfg'] = dict(max_epochs=9)
    if opt is not None:
        cfg['search_optimizer'] = opt
    return cfg


def test_the_schema_default_reaches_lamcts_and_an_explicit_share_wins(sim_cfg):
    from gpunet_mm.schema import FidelitySettings

    default = FidelitySettings(min_epochs=1).random_fraction
    assert with_random_fraction(_cfg(sim_cfg))['random_fraction'] == default
    assert with_random_fraction(_cfg(sim_cfg, random_fraction=0.5))['random_fraction'] == 0.5
    mine = dict(sim_cfg['search_optimizer'], random_fraction=0.25)
    assert with_random_fraction(_cfg(sim_cfg, mine))['random_fraction'] == 0.25
    # an optimiser without a model gets nothing from the default
    assert 'random_fraction' not in with_random_fraction(_cfg(sim_cfg, dict(type='random')))


@pytest.mark.parametrize(
    'opt, fid, match',
    [
        (
            None,
            dict(random_fraction=1.5),
            r'nas.fidelity.random_fraction: got 1.5; allowed: a number in \[0, 1\]',
        ),
        (None, dict(random_fraction='third'), r'nas.fidelity.random_fraction: got .third.'),
        (
            dict(type='LaMCTSBO', random_fraction=0.25),
            dict(random_fraction=0.5),
            r'search_optimizer.random_fraction 0.25 contradicts nas.fidelity.random_fraction 0.5',
        ),
        (
            dict(type='random'),
            dict(random_fraction=0.5),
            r"got 0.5, but search_optimizer.type 'random' takes no random share",
        ),
    ],
)
def test_bad_random_fractions_are_refused_before_the_journal(sim_cfg, tmp_path, opt, fid, match):
    cfg = _cfg(sim_cfg, opt, **fid)
    with pytest.raises(SearchConfigError, match=match):
        run_search(
            cfg,
            str(tmp_path),
            simulate=True,
            executor=LocalExecutor(rung_trainer(), num_workers=1),
            latency=FakeLatency(),
            write_reports=False,
        )
    assert not (tmp_path / 'journal.sqlite').exists()
