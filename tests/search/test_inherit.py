"""Weight inheritance on real GPUNet architectures: equal shapes copied, kernels centred,
channels leading, the rest left as initialised (Once-for-All's elastic kernel/width rules)."""

import dataclasses

import pytest
import torch

from gpunet_mm.models.arch_spec import GPUNetArch
from gpunet_mm.models.backbones.gpunet import GPUNet
from gpunet_mm.models.tiers import get_tier
from gpunet_mm.search.inherit import (
    closest_parent,
    inherit_state,
    inherit_weights,
    overlap_slices,
    transfer_fraction,
)


def _net(arch: GPUNetArch, seed: int) -> GPUNet:
    torch.manual_seed(seed)
    net = GPUNet(arch=arch, out_indices=(2, 3, 4))
    net.init_weights()
    return net


def _with_row(arch: GPUNetArch, index: int, **change) -> GPUNetArch:
    rows = [dataclasses.replace(r, **change) if i == index else r for i, r in enumerate(arch.rows)]
    return arch.replace(rows=tuple(rows), name=f'{arch.name}-edit')


def _irb_row(arch: GPUNetArch) -> int:
    return next(i for i, r in enumerate(arch.rows) if r.type == 'irb')


def test_overlap_slices_centre_kernels_and_lead_channels():
    c, p = overlap_slices((8, 1, 5, 5), (12, 1, 3, 3))
    assert c == (slice(0, 8), slice(0, 1), slice(1, 4), slice(1, 4))
    assert p == (slice(0, 8), slice(0, 1), slice(0, 3), slice(0, 3))
    c, p = overlap_slices((16,), (8,))
    assert c == (slice(0, 8),) and p == (slice(0, 8),)


def test_same_arch_copies_everything():
    a = get_tier('GPUNet-0')
    parent, child = _net(a, 0), _net(a, 1)
    rep = inherit_weights(child, parent.state_dict())
    assert rep.partial == [] and rep.kept == [] and rep.fraction == 1.0
    for k, v in parent.state_dict().items():
        assert torch.equal(child.state_dict()[k], v), k


@pytest.mark.parametrize('child_k, parent_k', [(5, 3), (3, 5)])
def test_kernels_are_centred_channels_leading(child_k, parent_k):
    base = get_tier('GPUNet-0')
    i = _irb_row(base)
    row = base.rows[i]
    parent_arch = _with_row(base, i, kernel=parent_k)
    child_arch = _with_row(base, i, kernel=child_k, out_channels=row.out_channels + 8)
    parent, child = _net(parent_arch, 0), _net(child_arch, 1)
    before = {k: v.clone() for k, v in child.state_dict().items()}
    rep = inherit_weights(child, parent.state_dict())
    psd, csd = parent.state_dict(), child.state_dict()
    dw = [k for k in rep.partial if 'depthwise_conv.conv.weight' in k]
    assert dw, rep.partial
    kernels = set()
    for k in dw:
        pw, cw = psd[k], csd[k]
        kc, kp = cw.shape[-1], pw.shape[-1]
        kernels.add((kc, kp))
        n = min(kc, kp)
        co, po = (kc - n) // 2, (kp - n) // 2
        m = min(pw.shape[0], cw.shape[0])
        assert torch.equal(cw[:m, :, co : co + n, co : co + n], pw[:m, :, po : po + n, po : po + n])
        if kc > kp:  # the ring around the centre keeps the child's own init
            assert torch.equal(cw[:, :, 0, :], before[k][:, :, 0, :])
    assert (child_k, parent_k) in kernels  # the edited row's kernels were centred
    # a wider projection: leading output channels from the parent, the rest as initialised
    wide = [k for k in rep.partial if 'linear_conv.conv.weight' in k]
    assert wide
    for k in wide:
        pw, cw = psd[k], csd[k]
        if cw.shape[0] > pw.shape[0]:
            assert torch.equal(cw[: pw.shape[0], : pw.shape[1]], pw[:, : cw.shape[1]])
            assert torch.equal(cw[pw.shape[0] :], before[k][pw.shape[0] :])
    # untouched tensors of equal shape are copied whole; BN statistics too
    assert any(k.endswith('running_mean') for k in rep.copied)
    for k in rep.copied:
        assert torch.equal(csd[k], psd[k])
    assert 0.5 < rep.fraction < 1.0


def test_other_tiers_inherit_what_lines_up():
    """GPUNet-1 from GPUNet-0: other widths and depths; nothing raises, every inherited
    tensor holds the parent's leading/centred values, missing layers keep their init."""
    parent_arch, child_arch = get_tier('GPUNet-0'), get_tier('GPUNet-1')
    parent, child = _net(parent_arch, 0), _net(child_arch, 1)
    before = {k: v.clone() for k, v in child.state_dict().items()}
    new, rep = inherit_state(child.state_dict(), parent.state_dict())
    assert rep.copied and rep.partial and rep.kept
    for k in rep.kept:
        assert torch.equal(new[k], before[k])
        assert k not in parent.state_dict() or parent.state_dict()[k].dim() != new[k].dim()
    frac = transfer_fraction(child_arch, parent_arch)
    assert 0.0 < frac < 1.0
    assert rep.fraction == pytest.approx(frac, rel=0.05)  # backbone-only estimate, no init


def test_closest_parent_prefers_the_most_weights():
    a0, a1 = get_tier('GPUNet-0'), get_tier('GPUNet-1')
    i = _irb_row(a0)
    near = _with_row(a0, i, kernel=5)
    pool = [
        dict(arch=a1.to_dict(), checkpoint='/ckpt/1.pth'),
        dict(arch=near.to_dict(), checkpoint='/ckpt/near.pth'),
    ]
    got = closest_parent(a0.to_dict(), pool)
    assert got['checkpoint'] == '/ckpt/near.pth' and got['fraction'] == 1.0
    assert closest_parent(a0.to_dict(), []) is None
    assert closest_parent(a1.to_dict(), pool[1:], min_fraction=0.99) is None


# ---------------------------------------------------------------------- in the search
def _inherit_search(sim_cfg, tmp_path, inherit):
    from gpunet_mm.search import LocalExecutor, SearchJournal
    from gpunet_mm.search.api import run_search

    from .conftest import FakeLatency, rung_trainer

    sent = []
    base = rung_trainer()

    def fn(task):
        sent.append((task.trial_id, dict(task.payload)))
        return base(task)

    sim_cfg['nas'].update(
        num_trials=12,
        fidelity=dict(min_epochs=1, eta=3, max_epochs=9, min_observations=4),
        inherit=inherit,
    )
    run_search(
        sim_cfg,
        str(tmp_path),
        simulate=True,
        executor=LocalExecutor(fn, num_workers=2),
        latency=FakeLatency(),
        write_reports=False,
    )
    return sent, SearchJournal.open(str(tmp_path))


def test_the_search_sends_new_candidates_the_closest_top_rung_parent(sim_cfg, tmp_path):
    sent, j = _inherit_search(sim_cfg, tmp_path, dict())
    top = {r['checkpoint']: r['trial_id'] for r in j.rung_results() if r['rung'] == 2}
    archs = {t.id: t.arch for t in j.trials()}
    inherited = [(tid, p['inherit_from']) for tid, p in sent if 'inherit_from' in p]
    assert inherited  # the later candidates found a parent that finished the top rung
    for tid, parent in inherited:
        assert parent['checkpoint'] in top and top[parent['checkpoint']] == parent['trial_id']
        assert parent['trial_id'] != tid
        assert parent['fraction'] == pytest.approx(
            transfer_fraction(archs[tid], archs[parent['trial_id']]), abs=1e-4
        )
    for _tid, p in sent:
        if p.get('resume_from'):  # a continuation resumes its own weights, never inherits
            assert 'inherit_from' not in p
    # the first candidates start from scratch: nothing had finished the top rung yet
    assert 'inherit_from' not in sent[0][1]


def test_the_search_inherits_nothing_unless_asked_or_below_min_fraction(sim_cfg, tmp_path):
    sent, _ = _inherit_search(sim_cfg, tmp_path / 'off', None)
    assert sent and not any('inherit_from' in p for _, p in sent)
    # only a parent that gives all of the backbone qualifies: none among distinct archs
    sent, _ = _inherit_search(sim_cfg, tmp_path / 'all', dict(min_fraction=1.0, parent_rung=0))
    assert not any(p.get('inherit_from', {}).get('fraction', 1.0) < 1.0 for _, p in sent)


@pytest.mark.parametrize(
    'inherit, match',
    [
        (dict(min_fraction=1.5), r'nas.inherit.min_fraction: got 1.5'),
        (dict(parent=2), r'nas.inherit.parent: unknown key'),
        (dict(parent_rung=3), r'nas.inherit.parent_rung: got 3; allowed: -3 to 2'),
    ],
)
def test_bad_inherit_settings_are_refused(inherit, match, sim_cfg, tmp_path):
    from gpunet_mm.search.trainer import SearchConfigError

    with pytest.raises(SearchConfigError, match=match):
        _inherit_search(sim_cfg, tmp_path, inherit)
