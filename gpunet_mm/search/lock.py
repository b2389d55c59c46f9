"""One controller per work_dir, and a dead one never blocks its successor.

``flock`` on ``WORK_DIR/.controller.lock``: the kernel drops the lock when the holder
dies, however it dies (``kill -9`` included), so a lock that cannot be taken always means
a live controller, and one that can be taken means every earlier controller is gone and
its running trials are orphans to re-dispatch.
"""

from __future__ import annotations

import fcntl
import os
import os.path as osp


class WorkDirBusyError(RuntimeError):
    pass


class WorkDirLock:
    def __init__(self, work_dir: str) -> None:
        self.path = osp.join(work_dir, '.controller.lock')
        self.fd = None

    def __enter__(self) -> WorkDirLock:
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            holder = os.read(fd, 64).decode(errors='replace').strip()
            os.close(fd)
            raise WorkDirBusyError(
                f'another search controller (pid {holder or "?"}) is running in '
                f'{osp.dirname(self.path)}; wait for it or use another --work-dir'
            ) from e
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
