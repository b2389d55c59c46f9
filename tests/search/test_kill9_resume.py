"""kill -9 of the controller mid-search, then --resume: nothing finished is lost or
re-trained, the trial that was running is dispatched again."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from gpunet_mm.search import SearchJournal

from .conftest import ROOT

SCRIPT = os.path.join(ROOT, 'tests', 'search', 'crash_search.py')


def _complete(work_dir):
    try:
        con = sqlite3.connect(os.path.join(work_dir, 'journal.sqlite'), timeout=1)
        n = con.execute("SELECT COUNT(*) FROM trials WHERE status='complete'").fetchone()[0]
        running = con.execute("SELECT COUNT(*) FROM trials WHERE status='running'").fetchone()[0]
        con.close()
        return n, running
    except sqlite3.Error:
        return 0, 0


def test_kill9_then_resume(tmp_path):
    wd, log = str(tmp_path / 'search'), str(tmp_path / 'trained.log')
    p = subprocess.Popen([sys.executable, SCRIPT, wd, log], cwd=ROOT)
    t0 = time.time()
    while time.time() - t0 < 120:
        n, running = _complete(wd)
        if n >= 4 and running:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = {t.id: (t.arch_hash, t.metric) for t in SearchJournal.open(wd).trials(('complete',))}
    was_running = [t.id for t in SearchJournal.open(wd).trials(('running',))]
    assert len(before) >= 4 and was_running

    subprocess.run([sys.executable, SCRIPT, wd, log, '--resume'], cwd=ROOT, check=True, timeout=300)
    j = SearchJournal.open(wd)
    after = {t.id: (t.arch_hash, t.metric) for t in j.trials(('complete',))}
    for tid, v in before.items():  # nothing finished was lost or changed
        assert after[tid] == v
    events = [json.loads(line) for line in open(log)]
    ended = [tid for kind, tid, _ in events if kind == 'end']
    assert len(ended) == len(set(ended))  # no trial trained to the end twice
    for tid in was_running:  # re-dispatched: a crashed attempt, then one that finished
        outcomes = [a['outcome'] for a in j.attempts(tid)]
        assert outcomes[-2:] == ['lost', 'ok'], outcomes
    assert len([t for t in j.trials() if t.attempts > 0]) == 12
    assert any(e['kind'] == 'resume' for e in j.events())
