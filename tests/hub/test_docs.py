"""The docs build without a warning (broken internal links and references included)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, 'docs')

pytest.importorskip('sphinx')
pytest.importorskip('myst_parser')


def sphinx(builder, out, docs=DOCS):
    return subprocess.run(
        [
            sys.executable,
            '-m',
            'sphinx',
            '-W',
            '--keep-going',
            '-E',
            '-q',
            '-b',
            builder,
            docs,
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )


def test_docs_build_without_warnings(tmp_path):
    proc = sphinx('html', tmp_path / 'html')
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert proc.stderr.strip() == ''
    html = (tmp_path / 'html' / 'hub.html').read_text()
    assert 'The model hub' in html
    # autodoc found the hub API and the results.json schema
    api = (tmp_path / 'html' / 'api.html').read_text()
    assert 'gpunet_mm.hub.query' in api and 'journal_hash' in api
    # every page of docs/ is in the site, each named after what it documents (none is called
    # search: Sphinx writes its own search page to search.html)
    pages = {n[:-3] for n in os.listdir(DOCS) if n.endswith('.md')}
    assert 'search' not in pages
    assert pages <= {n[:-5] for n in os.listdir(tmp_path / 'html') if n.endswith('.html')}
    assert 'LA-MCTS' in (tmp_path / 'html' / 'nas.html').read_text()
    assert 'tools/nas_search.py' in (tmp_path / 'html' / 'distributed_search.html').read_text()


def test_linkcheck_of_internal_links(tmp_path):
    # external (http/https) links are ignored in docs/conf.py: there is no network here
    proc = sphinx('linkcheck', tmp_path / 'linkcheck')
    assert proc.returncode == 0, proc.stderr[-5000:]
    report = (tmp_path / 'linkcheck' / 'output.txt').read_text()
    assert 'broken' not in report


def test_a_broken_link_fails_the_build(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    shutil.copytree(DOCS, repo / 'docs', ignore=shutil.ignore_patterns('_build'))
    for name in ('gpunet_mm', 'configs', 'tools', 'benchmarks'):
        os.symlink(os.path.join(ROOT, name), repo / name)
    with open(repo / 'docs' / 'hub.md', 'a') as f:
        f.write('\nSee [the missing page](no_such_page.md) and [this](hub.md#no-such-anchor).\n')
    proc = sphinx('html', tmp_path / 'out', docs=str(repo / 'docs'))
    assert proc.returncode != 0
    assert "cross-reference target not found: 'no_such_page.md'" in proc.stderr
    assert "local id not found in doc 'hub': 'no-such-anchor'" in proc.stderr
