"""One way for tests to fail on a CLI run that crashed: say why, unabridged."""

import re
import subprocess

import pytest


def check_ok(r: subprocess.CompletedProcess) -> None:
    """Fail with what a crashed tool said: pytest would cut a long assertion message to a
    few lines, and a process that aborts (a gloo SIGABRT) says why only in stderr."""
    if r.returncode == 0:
        return
    err = r.stderr.splitlines()
    why = [ln for ln in err if re.search(r'terminate called|what\(\)|Error|Signal|exitcode', ln)]
    pytest.fail(
        f'exit code {r.returncode}\n--- stderr lines that say why:\n'
        + '\n'.join(why[-40:])
        + '\n--- stderr tail:\n'
        + '\n'.join(err[-60:])
        + '\n--- stdout tail:\n'
        + '\n'.join(r.stdout.splitlines()[-30:]),
        pytrace=False,
    )
