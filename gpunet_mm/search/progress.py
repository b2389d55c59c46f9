"""What a person watching a search sees: a progress bar and a table of the latest trials.

On a terminal, rich redraws both in place; elsewhere (CI logs, ``nohup``) one line is
logged per finished trial, so a log file reads as the same story.
"""

from __future__ import annotations

import sys
import time
from typing import Any, List, Optional


def _fmt(v: Optional[float], spec: str = '.3f') -> str:
    return '-' if v is None else format(v, spec)


def _eta(elapsed: float, done: Optional[float], total: Optional[float]) -> Optional[float]:
    """Seconds left at the rate so far (``done`` of ``total`` in ``elapsed``), or None."""
    if not done or total is None or total <= done:
        return None
    return elapsed / done * (total - done)


class SearchProgress:
    """``on_update`` callback of the controller."""

    def __init__(
        self,
        total: int,
        live: Optional[bool] = None,
        stream=None,
        every_s: float = 5.0,
        per_trial: bool = True,
    ) -> None:
        self.total = int(total)
        self.every_s = float(every_s)
        self.per_trial = per_trial
        self._last = 0.0
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else bool(live)
        self.t0 = time.time()
        self._seen: set = set()
        self._final_key: tuple = ()
        self._live = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                console=Console(file=self.stream), refresh_per_second=2, transient=False
            )
            self._live.start()

    # ------------------------------------------------------------------ state
    def _state(self, ctrl: Any) -> dict:
        counts = ctrl.journal.counts()
        done = sum(1 for r in ctrl.journal.columns('attempts', ('complete', 'failed')) if r[0])
        elapsed = time.time() - self.t0
        eta = _eta(elapsed, done, self.total)
        # a search with nas.compute_budget ends at whichever of its two limits comes first;
        # with promotions the trial count is the far one (a few candidates reach the top)
        spent, _ = ctrl.compute() if hasattr(ctrl, 'compute') else (None, 0.0)
        budget = getattr(getattr(ctrl, 'opts', None), 'compute_budget', None)
        by_compute = _eta(elapsed, spent, budget)
        if by_compute is not None:
            eta = by_compute if eta is None else min(eta, by_compute)
        best = {b: ctrl.best(b) for b in ctrl.budgets}
        return dict(counts=counts, done=done, elapsed=elapsed, eta=eta, best=best)

    def final_line(self, ctrl: Any) -> str:
        """The final retrain's status: the search line's counts are frozen by then, and its
        ETA (the search's) would read 'about a minute' through a retrain of many."""
        fins = ctrl.journal.finals()
        n = len(fins)
        done = [f for f in fins if f['status'] in ('complete', 'failed')]
        running = sum(f['status'] == 'running' for f in fins)
        queued = sum(f['status'] == 'queued' for f in fins)
        ok = [f for f in done if f['status'] == 'complete' and f['metric'] is not None]
        since = time.time() - (ctrl.final_t0 or self.t0)
        eta = _eta(since, len(done), n)
        best = max(ok, key=lambda f: f['metric'], default=None)
        return (
            f'[final] retraining the top {n} on the full schedule: {len(done)}/{n} done, '
            f'{running} running'
            + (f', {queued} queued' if queued else '')
            + (f', {len(done) - len(ok)} failed' if len(done) > len(ok) else '')
            + (
                ''
                if best is None
                else f' | best {ctrl.metric} {best["metric"]:.4f} (#{best["trial_id"]})'
            )
            + f' | elapsed {(time.time() - self.t0) / 60:.1f} min (final {since / 60:.1f}), '
            + f'ETA {"-" if eta is None else f"{eta / 60:.1f} min"}'
        )

    def line(self, ctrl: Any) -> str:
        if getattr(ctrl, 'stage', 'search') == 'final':
            return self.final_line(ctrl)
        s = self._state(ctrl)
        c = s['counts']
        best = ', '.join(
            f'{b:g}ms: {_fmt(t.metric, ".4f")} (#{t.id})' if t else f'{b:g}ms: -'
            for b, t in s['best'].items()
        )
        eta = '-' if s['eta'] is None else f'{s["eta"] / 60:.1f} min'
        fid = ctrl.fidelity_status() if hasattr(ctrl, 'fidelity_status') else ''
        model = getattr(ctrl, 'latency_model', None)
        err = model.recent_error() if model is not None else None
        # the summary's latency_predictor figure: median over the last <= 20 proposals
        lat = (
            ''
            if err is None
            else f' | latency model error {100 * err:.1f} % (last {model.state()["window"]})'
        )
        return (
            f'[search] {s["done"]}/{self.total} trained, {c["running"]} running, '
            f'{c["failed"]} failed, {c["infeasible"]} over budget | best {best}{lat} | '
            + (f'{fid} | ' if fid else '')
            + f'elapsed {s["elapsed"] / 60:.1f} min, ETA {eta}'
        )

    def __call__(self, ctrl: Any) -> None:
        now = time.time()
        final = ctrl.done()
        if self._live is not None:
            if final or now - self._last >= 0.5:
                self._last = now
                self._live.update(self._render(ctrl))
            return
        new = [i for i in ctrl.latest if i not in self._seen]
        for i in new:
            self._seen.add(i)
            if not self.per_trial:
                continue
            t = ctrl.journal.trial(i)
            print(
                f'[search] trial {t.id} {t.status}: {ctrl.metric}={_fmt(t.metric, ".4f")} '
                f'latency={_fmt(t.latency_ms)} ms attempts={t.attempts} ({t.origin})',
                file=self.stream,
                flush=True,
            )
        if getattr(ctrl, 'stage', 'search') == 'final':
            # a line when a retrain starts or ends (few, long), and the heartbeat
            key = tuple((f['trial_id'], f['status']) for f in ctrl.journal.finals())
            if key != self._final_key or now - self._last >= 60:
                self._final_key, self._last = key, now
                print(self.final_line(ctrl), file=self.stream, flush=True)
            return
        # a status line on news (at most every every_s), at the end, and a heartbeat
        if final or (new and now - self._last >= self.every_s) or now - self._last >= 60:
            self._last = now
            print(self.line(ctrl), file=self.stream, flush=True)

    def _render(self, ctrl: Any):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        s = self._state(ctrl)
        head = Text(self.line(ctrl))
        bar = ProgressBar(total=max(1, self.total), completed=min(self.total, s['done']), width=60)
        table = Table(title='latest trials', show_lines=False, expand=False)
        for col in ('id', 'status', 'origin', 'latency ms', ctrl.metric, 'attempts'):
            table.add_column(col)
        rows: List[Any] = ctrl.journal.trials()[-8:]
        for t in rows:
            table.add_row(
                str(t.id),
                t.status,
                t.origin,
                _fmt(t.latency_ms),
                _fmt(t.metric, '.4f'),
                str(t.attempts),
            )
        return Group(bar, head, table)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
