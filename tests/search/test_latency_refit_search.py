"""The search refits its pruning predictor from every measurement and reports its error."""

import io

from gpunet_mm.search import LocalExecutor
from gpunet_mm.search.api import run_search
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
    assert f'latency model error {100 * state["recent_median_abs_error"]:.1f} %' in lines[-1]
