"""mmengine checkpoints load on torch >= 2.6 with nothing set by the user."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

import gpunet_mm  # noqa: F401  (installs the loader)


class NotAllowListed:
    pass


def mmengine_like_checkpoint():
    buf = HistoryBuffer()
    buf.update(np.float64(0.5))
    return dict(
        meta=dict(epoch=np.int64(3), seed=np.int32(7)),
        state_dict={'w': torch.ones(2)},
        message_hub=dict(log_scalars={'train/loss': buf}, runtime_info={'iter': 10}),
    )


def test_mmengine_checkpoint_loads_without_warning(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    torch.save(mmengine_like_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError):  # what upstream mmengine hits on torch>=2.6
        torch.load(path, weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['epoch'] == 3
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], HistoryBuffer)


def test_unknown_objects_fall_back_with_a_warning(tmp_path):
    path = tmp_path / 'odd.pth'
    torch.save({'x': NotAllowListed()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.warns(UserWarning, match='NotAllowListed.*allow-list'):
        ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert isinstance(ckpt['x'], NotAllowListed)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='can not be found'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))
