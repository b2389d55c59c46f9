"""The search refits its pruning predictor from every measurement and reports its error."""

import io

import pytest

from gpunet_mm.search import LocalExecutor
from gpunet_mm.search.api import SearchConfigError, run_search
from gpunet_mm.search.progress import SearchProgress

from .conftest import FakeLatency, surrogate_trainer


def test_the_search_refits_and_reports_the_predictor_error(sim_cfg, tmp_path):
    observed, lines = [], []
    progress = SearchProgress(10, live=False, stream=io.StringIO())

    def watch(ctrl):
        observed.append(ctrl.latency_model.num_observed)
        lines.append(progress.line(ctrl))

    s = run_search(
        sim_cfg,
        str(tmp_path),
        simulate=True,
        executor=LocalExecutor(surrogate_trainer(), num_workers=2),
        latency=FakeLatency(factor=1.3),
        write_reports=False,
        on_update=watch,
    )
    state = s['latency_predictor']
    # every measured proposal was observed (the reference and calibration are seeds)
    assert max(observed) >= 9 and state['window'] == min(20, max(observed))
    # the surrogate target is the proxy times an arch-specific factor (+-4 %): within 5 %
    assert 0.0 <= state['recent_median_abs_error'] <= 0.05
    assert 'latency model error' not in lines[0]  # nothing measured yet
    err = 100 * state['recent_median_abs_error']
    assert f'latency model error {err:.1f} % (last {state["window"]})' in lines[-1]


def test_the_retinanet_demo_prunes_with_its_committed_predictor_at_its_own_shape(
    tmp_path, monkeypatch
):
    """The RetinaNet demo search's ``predictor``: the committed demo predictor (fitted at
    256 px) predicts at the 128 px the search times at, is found from another working
    directory, and is refitted with the ratio model only (``predictor.refit``)."""
    from mmengine.config import Config

    from gpunet_mm.deploy.predictor import load_demo_predictor
    from gpunet_mm.models.arch_spec import GPUNetArch
    from gpunet_mm.models.tiers import get_tier
    from gpunet_mm.search.api import base_predictor, latency_model, load_search_predictor

    from .conftest import ROOT

    cfg = Config.fromfile(f'{ROOT}/configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py').to_dict()
    monkeypatch.chdir(tmp_path)
    arch = GPUNetArch.from_dict(dict(get_tier('GPUNet-0').to_dict(), resolution=128))
    fitted = load_demo_predictor()
    assert load_search_predictor(cfg).predict(arch) == fitted.predict(arch, (128, 128))
    assert base_predictor(cfg, False)(arch) < 0.6 * fitted.predict(arch)  # not at 256 px
    model = latency_model(cfg, base_predictor(cfg, False), dict(slope=1.0, intercept=0.0), False)
    assert model.models == ('anchor',) and model.features is not None
    cfg['predictor'] = dict(path='no/such/predictor.json')
    with pytest.raises(SearchConfigError, match='predictor.path: no/such/predictor.json'):
        load_search_predictor(cfg)
