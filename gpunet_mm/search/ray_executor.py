"""Trainings as Ray tasks: one task per attempt, a fresh worker process each.

Embedded by default: ``ray.init()`` starts a local Ray inside the controller, bound to
127.0.0.1, without the dashboard. ``address='auto'`` or ``'HOST:PORT'`` joins a running
cluster (``ray start --head`` on one node, ``ray start --address=...`` on the others; see
docs/distributed_search.md for Slurm and KubeRay).

Failures are data: a task that raises, a worker process that dies (SIGKILL, the OOM
killer, a lost node) or one over its time limit (cancelled with ``force=True``) becomes a
:class:`TrialOutcome` the controller retries or records. Ray's own retries are off
(``max_retries=0``) so that every attempt is in the journal.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Dict, List, Optional

from .executor import (
    Executor,
    TrialOutcome,
    TrialTask,
    classify_exception,
    format_exception,
    systemic_cause,
)
from .faults import disk_full_reason


def init_ray(
    address: Optional[str] = None,
    dashboard: bool = False,
    num_cpus: Optional[int] = None,
    num_gpus: Optional[int] = None,
) -> Dict[str, Any]:
    """Start (or join) Ray; returns the cluster's resources.

    The embedded Ray listens on the loopback interface only. On Linux, Ray swaps
    127.0.0.1 for the machine's routable address unless its multi-node support is off
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), so that is set for the local cluster.

    Without ``address`` this always starts its own Ray (``address='local'``): a plain
    ``ray.init()`` joins whatever ``$RAY_ADDRESS`` or ``/tmp/ray/ray_current_cluster`` names,
    and a stale file left by a dead ``ray start`` made it wait minutes for a cluster that
    was gone (or would share another user's).
    """
    if not address:
        os.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] = '0'
    import ray

    if not address:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before
    if ray.is_initialized():
        return ray.cluster_resources()
    # the trainings must see the package and the configs from where the controller runs
    env = {
        'env_vars': {
            'PYTHONPATH': os.pathsep.join(
                p for p in (os.getcwd(), os.environ.get('PYTHONPATH', '')) if p
            )
        }
    }
    kwargs: Dict[str, Any] = dict(
        include_dashboard=dashboard,
        log_to_driver=False,
        runtime_env=env,
        ignore_reinit_error=True,
    )
    if address:
        check_ray_address(address)
        ray.init(address=address, **kwargs)
    else:
        ray.init(
            address='local',
            _node_ip_address='127.0.0.1',
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            **kwargs,
        )
    return ray.cluster_resources()


def check_ray_address(address: str, timeout_s: float = 10.0) -> None:
    """A cluster address must answer before ``ray.init`` is given it: Ray itself retries an
    address where nothing listens forever. ``'auto'`` (a cluster started on this machine)
    is left to Ray, which finds it or says there is none."""
    from .controller import SearchError

    if address == 'auto':
        return
    hostport = address.split('://', 1)[-1]
    host, sep, port = hostport.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SearchError(
            f'--ray-address: got {address!r}; allowed: HOST:PORT of a running Ray head '
            "(e.g. 10.0.0.5:6379), ray://HOST:PORT, 'auto', or nothing for a local cluster"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise SearchError(
            f'--ray-address {address}: no Ray cluster answers there within {timeout_s:g} s '
            f'({e}). Start one first (on {host}: ray start --head --port={port}), or leave '
            '--ray-address out to run a local cluster in this process'
        ) from None


def _run_attempt(fn_name: str, task: Dict[str, Any], env: Dict[str, str]) -> Dict[str, Any]:
    """Executed in the Ray worker: set the thread environment, import, run."""
    import importlib

    os.environ.update(env)
    mod, _, name = fn_name.rpartition('.')
    fn = getattr(importlib.import_module(mod), name)
    return fn(task)


class RayExecutor(Executor):
    """Runs ``fn(task_dict)`` (an importable function's dotted name) as Ray tasks.

    Args:
        fn: dotted name of the worker function, e.g.
            ``'gpunet_mm.search.worker.run_trial'``.
        num_workers: concurrent trainings.
        num_cpus / num_gpus: Ray resources of one training.
        threads: torch/OpenMP threads of one training (``OMP_NUM_THREADS``).
    """

    def __init__(
        self,
        fn: str,
        num_workers: int,
        num_cpus: float = 1,
        num_gpus: float = 0,
        threads: Optional[int] = None,
        memory: Optional[int] = None,
    ) -> None:
        import ray

        self.ray = ray
        self.fn = fn
        self.num_workers = int(num_workers)
        opts: Dict[str, Any] = dict(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0, max_calls=1
        )
        if memory:
            opts['memory'] = int(memory)
        self._remote = ray.remote(**opts)(_run_attempt)
        self.env = {}
        if threads:
            self.env = {k: str(threads) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
        self._running: Dict[Any, Any] = {}  # ref -> (task, start, deadline)

    @property
    def running(self) -> int:
        return len(self._running)

    def submit(self, task: TrialTask) -> None:
        t = dict(trial_id=task.trial_id, attempt=task.attempt, arch=task.arch, **task.payload)
        ref = self._remote.remote(self.fn, t, self.env)
        timeout = task.payload.get('timeout_s')
        deadline = time.time() + float(timeout) if timeout else None
        self._running[ref] = (task, time.time(), deadline)

    def _outcome(self, ref: Any) -> TrialOutcome:
        ray = self.ray
        task, start, _ = self._running.pop(ref)
        busy = time.time() - start
        try:
            result = ray.get(ref)
            return TrialOutcome(task.trial_id, task.attempt, 'ok', result, busy_s=busy)
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, 'cause', None) is not None else e
            kind = classify_exception(cause)
            return TrialOutcome(
                task.trial_id,
                task.attempt,
                kind,
                error=format_exception(cause),
                busy_s=busy,
                # a chain does not survive Ray's pickling; the traceback's text does
                systemic=systemic_cause(cause) or disk_full_reason(e),
            )
        except ray.exceptions.TaskCancelledError:
            return TrialOutcome(
                task.trial_id,
                task.attempt,
                'timeout',
                error='cancelled over its time limit',
                busy_s=busy,
            )
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.RayError,
        ) as e:
            return TrialOutcome(
                task.trial_id,
                task.attempt,
                'crash',
                error=f'{type(e).__name__}: {str(e)[-1500:]}',
                busy_s=busy,
                systemic=systemic_cause(e),
            )

    def poll(self, timeout: float) -> List[TrialOutcome]:
        ray = self.ray
        out: List[TrialOutcome] = []
        now = time.time()
        for ref, (task, start, deadline) in list(self._running.items()):
            if deadline is not None and now > deadline:
                ray.cancel(ref, force=True)
                self._running.pop(ref)
                out.append(
                    TrialOutcome(
                        task.trial_id,
                        task.attempt,
                        'timeout',
                        error=f'over its time limit of {task.payload.get("timeout_s")} s; '
                        'cancelled',
                        busy_s=now - start,
                    )
                )
        if out or not self._running:
            return out
        try:
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
            if ready:
                ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        except ray.exceptions.RayError as e:  # the cluster itself: every attempt in it is gone
            why = systemic_cause(e) or f'Ray failed to wait for the trainings: {e}'[:1000]
            out = [
                TrialOutcome(
                    task.trial_id,
                    task.attempt,
                    'crash',
                    error=why,
                    busy_s=now - start,
                    systemic=why,
                )
                for task, start, _ in self._running.values()
            ]
            self._running.clear()
            return out
        return [self._outcome(r) for r in ready]

    def shutdown(self) -> None:
        for ref in list(self._running):
            self.ray.cancel(ref, force=True)
        self._running.clear()
