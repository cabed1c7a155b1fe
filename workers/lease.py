"""The lease a worker holds while it advances a run, renewed by a heartbeat thread.

When the worker dies the lease expires, and the reaper (workers/reaper.py) queues the run again.
"""

from __future__ import annotations

import secrets
import threading
from types import TracebackType

from redis import Redis

from workers import keys

_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Lease:
    def __init__(self, redis: Redis, run_id: str, seconds: int) -> None:
        self.redis = redis
        self.key = keys.lease(run_id)
        self.seconds = seconds
        self.token = secrets.token_hex(8)
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.held = bool(self.redis.set(self.key, self.token, nx=True, ex=self.seconds))
        if self.held:
            self._thread = threading.Thread(target=self._heartbeat, name=f"lease {self.key}", daemon=True)
            self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            self.redis.eval(_RENEW, 1, self.key, self.token, self.seconds)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.held:
            self.redis.eval(_RELEASE, 1, self.key, self.token)
