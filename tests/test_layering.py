"""The models depend on nothing above them (issue 19: no models <-> apis import cycle).

``gpunet_mm.models`` may import the registries, the schema layer and itself; the layers that
build on models (apis, deploy, search, hub, ...) reach it, never the other way round. Checked
on the source (every import statement, at any depth), so a lazy import inside a function
counts too.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, 'gpunet_mm')
#: what a module under gpunet_mm/models may import from the package
MODELS_MAY_IMPORT = ('gpunet_mm.models', 'gpunet_mm.registry', 'gpunet_mm.schema')


def imported_modules(path: str, root: str = ROOT):
    """``(line, absolute module)`` of every import in the file at ``path`` (under ``root``)."""
    package = os.path.relpath(path, root)[: -len('.py')].split(os.sep)[:-1]
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            names = [mod] if node.module else [f'{mod}.{a.name}' for a in node.names]
            for name in names:
                yield node.lineno, name


def _models_files():
    for folder, _, files in os.walk(os.path.join(PKG, 'models')):
        for name in files:
            if name.endswith('.py'):
                yield os.path.join(folder, name)


def test_models_import_nothing_above_them():
    bad = [
        f'{os.path.relpath(path, ROOT)}:{line} imports {mod}'
        for path in _models_files()
        for line, mod in imported_modules(path)
        if mod.startswith('gpunet_mm') and not mod.startswith(MODELS_MAY_IMPORT)
    ]
    assert not bad, bad


@pytest.mark.parametrize(
    'source, expected',
    [
        ('from ...apis.checkpoint import check_state_dict\n', 'gpunet_mm.apis.checkpoint'),
        ('from ..tiers import get_tier\n', 'gpunet_mm.models.tiers'),
        ('import gpunet_mm.deploy\n', 'gpunet_mm.deploy'),
    ],
)
def test_the_check_resolves_relative_imports(tmp_path, source, expected):
    """The checker itself: a relative import in models/backbones resolves to its module."""
    folder = tmp_path / 'gpunet_mm' / 'models' / 'backbones'
    folder.mkdir(parents=True)
    (folder / 'x.py').write_text(source)
    found = [m for _, m in imported_modules(str(folder / 'x.py'), str(tmp_path))]
    assert found == [expected]
