"""The CPU (gloo) process group that tools/train.py, tools/test.py and multi-process trials
open and close: no rank leaves it while another is still working."""

import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config

from gpunet_mm.apis import cpu_process_group


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE='2'
    )
    cfg = Config(dict())
    with cpu_process_group(cfg, 'pytorch') as own:
        assert own and dist.get_world_size() == 2
        if rank == 0:
            time.sleep(1.5)  # rank 0 still saving a checkpoint
        body_done = time.time()
    left = time.time()
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(
            dict(
                body_done=body_done,
                left=left,
                initialized=dist.is_initialized(),
                wrapper=cfg.model_wrapper_cfg.type,
                backend=cfg.env_cfg.dist_cfg.backend,
            ),
            f,
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason='with CUDA mmengine owns the group')
def test_no_rank_leaves_before_the_others_are_done(tmp_path):
    mp.spawn(_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f'rank{i}.json').read_text()) for i in (0, 1))
    # rank 1 finished its work at once but left only after rank 0 had finished
    assert r1['body_done'] < r0['body_done'] - 1.0
    assert r1['left'] >= r0['body_done']
    for r in (r0, r1):
        assert not r['initialized']  # destroyed on the way out
        assert r['wrapper'] == 'MMDistributedDataParallel' and r['backend'] == 'gloo'


def test_without_launcher_nothing_is_started():
    import torch.distributed as dist

    cfg = Config(dict())
    with cpu_process_group(cfg, 'none') as own:
        assert own is False and not dist.is_initialized()
    assert 'model_wrapper_cfg' not in cfg


@pytest.mark.skipif(torch.cuda.is_available(), reason='with CUDA mmengine owns the group')
def test_unsupported_cpu_launcher_is_named():
    with pytest.raises(ValueError, match="launcher 'slurm'.*pytorch"):
        with cpu_process_group(Config(dict()), 'slurm'):
            pass
