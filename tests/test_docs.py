"""Every documented Python block runs as written; the README's mmdet snippet builds on mmdet.

A block is skipped only when an HTML comment right above it starts with ``<!-- skip-test``
and says why. Bash blocks are not executed here (the tools have their own tests). Each
file's blocks run in order in one namespace (later blocks may use earlier names), in a
scratch folder that sees the repository's ``configs/``.
"""

import os
import re
from typing import List, Tuple

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r'^```(\w*)\s*$')


def code_blocks(path: str) -> List[Tuple[str, str, bool, int]]:
    """(language, code, skipped, first line) of every fenced block of a Markdown file."""
    lines = open(path, encoding='utf-8').read().splitlines()
    blocks, i, comment = [], 0, ''
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m:
            lang, start, body = m.group(1), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith('```'):
                body.append(lines[i])
                i += 1
            blocks.append(
                (lang, '\n'.join(body) + '\n', comment.startswith('<!-- skip-test'), start)
            )
            comment = ''
        elif line.strip().startswith('<!--'):
            comment = line.strip()
            while '-->' not in lines[i] and i + 1 < len(lines):
                i += 1
        elif line.strip():
            comment = ''
        i += 1
    return blocks


DOCS = ['README.md'] + sorted(
    os.path.join('docs', f) for f in os.listdir(os.path.join(ROOT, 'docs')) if f.endswith('.md')
)
#: files whose blocks load a model or export a detector: several seconds each
SLOW_DOCS = {'docs/deploy.md', 'docs/demo_data.md'}
#: owned by another branch
XFAIL_DOCS: dict = {}  # docs whose snippets are known broken (none now)


def _params():
    out = []
    for doc in DOCS:
        marks = []
        if doc in SLOW_DOCS:
            marks.append(pytest.mark.slow)
        if doc in XFAIL_DOCS:
            marks.append(pytest.mark.xfail(reason=XFAIL_DOCS[doc], strict=False))
        out.append(pytest.param(doc, marks=marks, id=doc))
    return out


def test_skip_marker_is_recognised(tmp_path):
    md = tmp_path / 'x.md'
    md.write_text(
        '<!-- skip-test: needs data -->\n```python\nraise SystemExit\n```\n\n'
        '```python\nx = 1\n```\n```bash\nrm -rf /\n```\n'
    )
    blocks = code_blocks(str(md))
    assert [(b[0], b[2]) for b in blocks] == [('python', True), ('python', False), ('bash', False)]


@pytest.mark.parametrize('doc', _params())
def test_python_blocks_run(doc, tmp_path, monkeypatch):
    blocks = [b for b in code_blocks(os.path.join(ROOT, doc)) if b[0] == 'python']
    runnable = [b for b in blocks if not b[2]]
    if not runnable:
        pytest.skip(f'{doc} has no runnable python block')
    os.symlink(os.path.join(ROOT, 'configs'), tmp_path / 'configs')
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace = {'__name__': '__docs__'}
    for _, code, _, line in runnable:
        try:
            exec(compile(code, f'{doc}:{line}', 'exec'), namespace)
        except Exception as e:
            raise AssertionError(f'{doc} block at line {line} failed: {e!r}\n{code}') from e


def readme_mmdet_snippet(detector: str = 'retinanet') -> str:
    """The README's mmdet config snippet on top of mmdet's ``detector`` config."""
    text = open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read()
    found = [
        b for b in code_blocks(os.path.join(ROOT, 'README.md')) if f'mmdet::{detector}' in b[1]
    ]
    assert len(found) == 1, f'README.md should hold exactly one mmdet {detector} snippet'
    assert found[0][1] in text
    return found[0][1]


def test_readme_two_stage_snippet_matches_the_rpn_and_roi_strides(tmp_path):
    """The two-stage recipe builds with FPN levels at the RPN's and RoI extractor's strides;
    the one-stage recipe's out_indices on Faster R-CNN is refused, naming the fix."""
    from mmengine.config import Config

    from gpunet_mm.apis import build_model

    path = tmp_path / 'my_faster_rcnn_gpunet.py'
    path.write_text(readme_mmdet_snippet('faster_rcnn'))
    cfg = Config.fromfile(str(path))
    model = build_model(cfg.model, 'mmdet').eval()
    assert list(model.backbone.out_channels) == list(cfg.model.neck.in_channels)
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 256, 256))
    strides = [256 // f.shape[-1] for f in feats]
    assert strides == list(cfg.model.rpn_head.anchor_generator.strides)
    assert strides[:4] == list(cfg.model.roi_head.bbox_roi_extractor.featmap_strides)
    bad = cfg.model.to_dict()
    bad['backbone']['out_indices'] = (2, 3, 4)
    bad['neck']['in_channels'] = [112, 160, 832]
    with pytest.raises(
        ValueError,
        match=r'anchor_generator\.strides \[4, 8, 16, 32, 64\] do '
        r'not match .* \[8, 16, 32, 64, 128\].*out_indices=\(1, 2, 3, 4\)',
    ):
        build_model(bad, 'mmdet')


def test_readme_mmdet_snippet_builds_on_mmdets_retinanet(tmp_path):
    """Exactly the README text, saved as a config on top of mmdet's shipped RetinaNet."""
    from mmengine.config import Config

    from gpunet_mm.apis import build_model, codebase_of

    path = tmp_path / 'my_retinanet_gpunet.py'
    path.write_text(readme_mmdet_snippet())
    cfg = Config.fromfile(str(path))
    assert codebase_of(cfg) == 'mmdet' and cfg.model.type == 'RetinaNet'
    assert set(cfg.model.backbone) == {'type', 'tier', 'out_indices'}  # no ResNet leftovers
    model = build_model(cfg.model, 'mmdet').eval()
    assert list(model.backbone.out_channels) == list(cfg.model.neck.in_channels)
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 256, 256))
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert all(f.shape[1] == cfg.model.neck.out_channels for f in feats)
