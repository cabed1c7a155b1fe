"""Client-side pacing for Slack Web API calls: token buckets per channel and per workspace, 429 holds.

Pure logic with an injectable clock, so it can be tested without sleeping. Rates follow
shared/reference/slack-platform.md section 3.1:

- chat.postMessage: about 1 message a second per channel (burst 3), plus a workspace ceiling.
- chat.update: Tier 3 (50+/min), per workspace.
- chat.postEphemeral: Tier 4 (100+/min), per workspace.
- files_upload_v2: two Tier 4 calls per upload, so half the Tier 4 rate.
- response_url: the 1 message a second posting rule, per channel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, got {self}")


@dataclass(frozen=True)
class MethodRates:
    """Limits for one kind of call: per channel, per workspace, or both."""

    per_channel: Rate | None = None
    workspace: Rate | None = None


DEFAULT_RATES: dict[str, MethodRates] = {
    "chat.postMessage": MethodRates(per_channel=Rate(1.0, 3), workspace=Rate(300 / 60, 30)),
    "chat.update": MethodRates(workspace=Rate(50 / 60, 5)),
    "chat.postEphemeral": MethodRates(workspace=Rate(100 / 60, 10)),
    "files.upload": MethodRates(workspace=Rate(50 / 60, 5)),
    "response_url": MethodRates(per_channel=Rate(1.0, 3)),
}


class TokenBucket:
    """`burst` tokens, refilled at `per_second`; one call takes one token."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(
                float(self.rate.burst), self.tokens + (now - self.updated) * self.rate.per_second
            )
            self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 when a call may go now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate.per_second

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0


class Pacer:
    """Decides when a call may be sent. Thread-safe; one Pacer per sender process."""

    def __init__(
        self, rates: Mapping[str, MethodRates] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._holds: dict[str, float] = {}

    def _bucket_keys(self, channel: str, method: str) -> list[tuple[tuple[str, str], Rate]]:
        rates = self.rates.get(method)
        if rates is None:
            raise KeyError(f"no pacing rate for {method!r}; known: {', '.join(sorted(self.rates))}")
        keys: list[tuple[tuple[str, str], Rate]] = []
        if rates.per_channel is not None:
            keys.append(((method, channel), rates.per_channel))
        if rates.workspace is not None:
            keys.append(((method, "*"), rates.workspace))
        return keys

    def _bucket(self, key: tuple[str, str], rate: Rate, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, now)
        return bucket

    def _delay(self, channel: str, method: str, now: float) -> float:
        held = max(self._holds.get(channel, 0.0), self._holds.get(f"method:{method}", 0.0)) - now
        waits = [self._bucket(k, r, now).wait(now) for k, r in self._bucket_keys(channel, method)]
        return max([0.0, held, *waits])

    def delay(self, channel: str, method: str) -> float:
        """Seconds before a `method` call for `channel` may be sent; 0 means now."""
        with self._lock:
            return self._delay(channel, method, self.clock())

    def acquire(self, channel: str, method: str) -> float:
        """Take the tokens for one call and return 0, or take nothing and return the seconds to wait."""
        with self._lock:
            now = self.clock()
            wait = self._delay(channel, method, now)
            if wait == 0.0:
                for key, rate in self._bucket_keys(channel, method):
                    self._bucket(key, rate, now).take(now)
            return wait

    def hold(self, channel: str, seconds: float, method: str | None = None) -> None:
        """After a 429: nothing more for this channel for `seconds`; a workspace-wide method waits too."""
        with self._lock:
            until = self.clock() + seconds
            self._holds[channel] = max(self._holds.get(channel, 0.0), until)
            rates = self.rates.get(method) if method else None
            if rates is not None and rates.workspace is not None:
                key = f"method:{method}"
                self._holds[key] = max(self._holds.get(key, 0.0), until)


def backoff_delay(failures: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff after `failures` consecutive transient failures: base, 2*base, 4*base… ≤ cap."""
    if failures < 1:
        return 0.0
    return min(cap, base * 2 ** (failures - 1))
