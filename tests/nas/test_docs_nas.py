"""Every code block of docs/nas.md runs as written (issue 11)."""

import os
import re
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, 'docs', 'nas.md')


def blocks(lang):
    text = open(DOC).read()
    return re.findall(rf'```{lang}\n(.*?)```', text, flags=re.S)


def test_the_doc_has_code_blocks():
    assert blocks('python') and blocks('bash')


@pytest.mark.parametrize('i', range(len(blocks('python'))))
def test_python_blocks_run(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks('python')[i]
    exec(compile(code, f'docs/nas.md python block {i}', 'exec'), {'__name__': '__doc__'})


def bash_commands():
    out = []
    for block in blocks('bash'):
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split('  #')[0].strip()
            if line and not line.startswith('#'):
                out.append(line)
    return out


@pytest.mark.parametrize('line', bash_commands())
def test_bash_commands_are_valid(line):
    """Benchmark commands parse with the tool's own parser (running them takes minutes);
    the benchmark script passes ``bash -n``."""
    argv = shlex.split(line)
    if argv[:2] == ['bash', 'benchmarks/benchmark_search.sh']:
        r = subprocess.run(['bash', '-n', os.path.join(ROOT, argv[1])], capture_output=True)
        assert r.returncode == 0, r.stderr
        return
    assert argv[0].endswith('python') and argv[1] == 'tools/benchmark_search.py', line
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'benchmark_search', os.path.join(ROOT, 'tools', 'benchmark_search.py')
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parse_args(argv[2:])
    assert args.budget >= 1
