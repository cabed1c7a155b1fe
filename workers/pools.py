"""SSH pools kept per run inside a worker process, so a run reuses one connection per host.

RQ's SimpleWorker runs jobs in the worker process itself, so the pool outlives a single advance job
(a run that paused at an approval comes back to warm connections if the same worker picks it up).
"""

from __future__ import annotations

import threading

from workers.ssh import SshPool


class PoolCache:
    def __init__(self) -> None:
        self._pools: dict[str, SshPool] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> SshPool:
        with self._lock:
            pool = self._pools.get(run_id)
            if pool is None:
                pool = self._pools[run_id] = SshPool()
            return pool

    def close(self, run_id: str) -> None:
        with self._lock:
            pool = self._pools.pop(run_id, None)
        if pool is not None:
            pool.close()

    def interrupt(self, run_id: str) -> None:
        """Stop the run's commands in flight and drop its pool: this worker lost the run's lease."""
        with self._lock:
            pool = self._pools.pop(run_id, None)
        if pool is not None:
            pool.interrupt(f"this worker lost the lease of run {run_id}")

    def close_all(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
