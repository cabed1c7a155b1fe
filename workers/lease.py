"""The lease a worker holds while it advances a run: the worker acts for the run only while it holds it.

A heartbeat thread renews the lease every `ttl / 5` seconds. The worker judges by its own clock how
long the lease is surely still its own: until the moment it sent its last successful renewal, plus
the TTL, minus a safety margin (`ttl * 3 / 10`). It does not need Redis to know that, so when Redis
is unreachable (down, paused, a half-open connection) the worker still stops in time: at that
moment it declares the lease lost, runs the callbacks that stop its in-flight work (SSH commands are
signalled and their channels closed, API connections dropped) and refuses every further write
(workers/fence.py). Only after the TTL has passed in Redis can the reaper (workers/reaper.py) hand
the run to another worker, so two workers never act for one run at the same time.

The heartbeat's client has its own short socket timeout and no retries, so one renewal attempt can
never block past the moment the lease must be given up.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from types import TracebackType

from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from workers import keys

log = logging.getLogger(__name__)

_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
    "return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class LeaseLost(Exception):
    """The worker no longer holds the run's lease: it must stop acting for the run at once."""


def heartbeat_client(redis: Redis, ttl: float) -> Redis:
    """A client for renewals whose calls give up within a tenth of the TTL (never retried)."""
    kwargs = dict(redis.connection_pool.connection_kwargs)
    kwargs.update(socket_timeout=ttl / 10, socket_connect_timeout=ttl / 10, retry=Retry(NoBackoff(), 0))
    return Redis(
        connection_pool=ConnectionPool(connection_class=redis.connection_pool.connection_class, **kwargs)
    )


class Lease:
    def __init__(self, redis: Redis, run_id: str, ttl: float, heartbeat: Redis | None = None) -> None:
        self.redis = redis
        self.heartbeat = heartbeat or redis
        self.run_id = run_id
        self.key = keys.lease(run_id)
        self.ttl = ttl
        self.token = secrets.token_hex(16)
        self.held = False
        self.lost_because = ""
        self._valid_until = 0.0
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        sent = time.monotonic()
        self.held = bool(self.redis.set(self.key, self.token, nx=True, px=int(self.ttl * 1000)))
        if self.held:
            self._valid_until = sent + self.ttl * 0.7
            self._thread = threading.Thread(target=self._beat, name=f"lease {self.key}", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.held and not self.lost_because:
            try:
                self.redis.eval(_RELEASE, 1, self.key, self.token)
            except RedisError as failure:
                log.warning(
                    "could not release the lease of run %s (%s); it expires by itself", self.run_id, failure
                )

    @property
    def lost(self) -> bool:
        return bool(self.lost_because) or time.monotonic() >= self._valid_until

    def check(self) -> None:
        """Raise LeaseLost unless the lease is surely still held (judged by this process's clock)."""
        if self.lost:
            reason = self.lost_because or "not renewed in time"
            raise LeaseLost(f"run {self.run_id}: this worker's lease is lost ({reason})")

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from the heartbeat thread) when the lease is lost; at once if it already is."""
        with self._lock:
            if not self.lost_because:
                self._callbacks.append(callback)
                return
        callback()

    def forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def _beat(self) -> None:
        interval = self.ttl / 5
        next_renewal = time.monotonic() + interval
        while not self._stop.wait(max(0.0, min(next_renewal, self._valid_until) - time.monotonic())):
            now = time.monotonic()
            if now >= self._valid_until:
                self._lose(f"not renewed for {self.ttl * 0.7:g} s: Redis did not answer")
                return
            if now < next_renewal:
                continue
            try:
                renewed = self.heartbeat.eval(_RENEW, 1, self.key, self.token, int(self.ttl * 1000))
            except RedisError as error:
                log.warning("lease of run %s: renewal failed (%s); retrying", self.run_id, error)
                next_renewal = time.monotonic() + min(interval, 0.5)
                continue
            if not renewed:
                self._lose("Redis says it expired or another worker holds it")
                return
            self._valid_until = now + self.ttl * 0.7
            next_renewal = now + interval

    def _lose(self, reason: str) -> None:
        with self._lock:
            self.lost_because = reason
            callbacks, self._callbacks = self._callbacks, []
        log.error("run %s: lease lost (%s); stopping its step and writing nothing more", self.run_id, reason)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing callback must not keep the others from stopping their work
                log.exception("run %s: a lease-lost callback failed", self.run_id)
