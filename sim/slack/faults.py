"""Faults the simulator injects on request, and Slack's per-channel posting limit.

A fault answers the next N matching calls with an HTTP error (429 with Retry-After, 500, 503) or with a
200 `ok:false` error, without changing any state, as a failed call to Slack would. A fault with a
`delay` holds each matching call that long first; with status 200 and no error it then answers the call
normally (it takes effect, late), as a slow Slack does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


@dataclass
class Fault:
    count: int
    status: int = 429
    method: str | None = None
    retry_after: int = 1
    error: str | None = None
    channel: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"fault count must be at least 1, got {self.count}")
        if self.status not in (200, 429) and self.status < 400:
            raise ValueError(f"fault status must be 200 (with error), 429 or 4xx/5xx, got {self.status}")
        if self.delay < 0:
            raise ValueError(f"fault delay must be 0 or more seconds, got {self.delay}")
        if self.status == 200 and not self.error and not self.delay:
            raise ValueError(
                "a fault with status 200 needs an error code (e.g. error='channel_not_found') or a delay"
            )

    @property
    def refuses(self) -> bool:
        """True when the call is answered with an error; False for a delay that then answers normally."""
        return self.status != 200 or self.error is not None

    @property
    def body_error(self) -> str:
        return self.error or DEFAULT_ERRORS.get(self.status, "fatal_error")

    def matches(self, method: str, channel: str | None) -> bool:
        return self.method in (None, method) and self.channel in (None, channel)


class FaultPlan:
    """Queued faults, consumed in the order they were added by the calls they match."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(f.count for f in self._faults)

    def take(self, method: str, channel: str | None = None) -> Fault | None:
        """The fault to apply to this call, if any; each use consumes one of its count."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, channel):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
            return None


class PostingLimit:
    """Slack's chat.postMessage rule, about one message a second per channel with a small burst.

    Returns how long the caller must wait (the Retry-After Slack would send), 0 when the call may pass.
    """

    def __init__(self, per_second: float = 1.0, burst: int = 4, clock: Callable[[], float] = time.monotonic):
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, channel: str) -> int:
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(channel, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
            if tokens >= 1.0:
                self._buckets[channel] = (tokens - 1.0, now)
                return 0
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.per_second))
