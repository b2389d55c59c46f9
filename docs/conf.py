"""Sphinx configuration: MyST Markdown pages (as the OpenMMLab projects), the furo theme.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (tests/hub/test_docs.py
builds it the same way and fails on any warning). External links are not checked (no
network here); internal references are, through ``nitpicky`` and MyST's cross-reference
warnings.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

_ns: dict = {}
with open(os.path.join(ROOT, 'gpunet_mm', 'version.py'), encoding='utf-8') as _f:
    exec(_f.read(), _ns)  # the version without importing the package (and torch)
__version__ = _ns['__version__']

project = 'gpunet_mm'
author = 'gpunet_mm contributors'
copyright = '2026, gpunet_mm contributors'
version = release = __version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
# no page may be called search.md: Sphinx's own search page is search.html
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3

html_theme = 'furo'
html_title = f'gpunet_mm {version}'

# API reference: members in source order, typed signatures, no private members
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_default_options = {'members': True, 'show-inheritance': True}

# every internal reference must resolve (a missing page, anchor or API name is a warning,
# and the test build turns warnings into errors); type names inside docstrings are prose
nitpicky = True
nitpick_ignore_regex = [
    (r'py:(class|obj|data|exc)', r'.*'),
]
# references in docstrings to private helpers or to names documented under another path
nitpick_ignore = [
    ('py:meth', '_propose'),
    ('py:meth', '_calibrate'),
    ('py:meth', 'GPUNetArch.structural_hash'),
    ('py:func', 'arch_features'),
]
suppress_warnings = []

# linkcheck: only relative links; there is no network in tests or CI
linkcheck_ignore = [r'https?://.*']
linkcheck_anchors = True
