"""Sends the outbox to Slack: per channel, in order, paced, retried, never silently dropped.

- One sender per channel at a time across all replicas (keys.outbox_sender(channel), a lock with a TTL).
- A 429 holds that channel for Retry-After seconds; the call stays at the head and is sent again.
- 5xx and connection errors are retried with exponential backoff for up to `retry_budget` seconds;
  after that the entry goes to the dead-letter list (keys.outbox_dead_letters()) with an error log.
- ok:false errors that cannot succeed later (invalid_blocks, channel_not_found, …) are dead-lettered
  at once, logged with the reason.
- Channels are independent: each is served by its own task, so a held channel delays nobody else.

Delivery is at least once: a process that dies between Slack's answer and the removal of the entry
sends that entry again when the lock passes to another sender.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

from bot.outbox import Entry
from bot.pacing import Pacer, backoff_delay
from workers import keys

log = logging.getLogger(__name__)

COALESCE_WINDOW = 32
"""How many entries are read at once to collapse consecutive updates of one slot."""
SLOT_TTL = 30 * 24 * 3600
METHOD = {
    "post": "chat.postMessage",
    "update": "chat.update",
    "ephemeral": "chat.postEphemeral",
    "upload": "files.upload",
    "respond": "response_url",
}
TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}

_EXTEND = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_FORGET_IF_EMPTY = (
    "if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end return 0"
)


def make_web_client(token: str | None = None, base_url: str | None = None, timeout: int = 15) -> WebClient:
    """A WebClient for the sender: SLACK_BOT_TOKEN / SLACK_API_URL by default, and no retry handlers
    (the sender does its own retrying, so a blocked call never stalls a sender thread in a sleep)."""
    bot_token = token or os.environ.get("SLACK_BOT_TOKEN", "")
    if not bot_token.startswith("xoxb-"):
        raise ValueError("a Slack bot token (xoxb-…) is needed: set SLACK_BOT_TOKEN")
    url = base_url or os.environ.get("SLACK_API_URL") or WebClient.BASE_URL
    return WebClient(token=bot_token, base_url=url, timeout=timeout, retry_handlers=[])


@dataclass
class Outcome:
    """What happened to one call: sent, or wait (`retry_after` for a 429), or retry, or dead."""

    kind: str
    reason: str = ""
    retry_after: float = 0.0


@dataclass
class _ChannelState:
    not_before: float = 0.0
    failures: int = 0
    first_failure: float | None = None


def _text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class OutboxSender:
    def __init__(
        self,
        redis: Redis,
        web_client: WebClient,
        *,
        pacer: Pacer | None = None,
        lock_ttl: float = 30.0,
        retry_budget: float = 600.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        max_parallel: int = 4,
        owner: str | None = None,
    ) -> None:
        self.redis = redis
        self.client = web_client
        self.pacer = pacer or Pacer()
        self.lock_ttl_ms = int(lock_ttl * 1000)
        self.retry_budget = retry_budget
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_parallel = max_parallel
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = {"sent": 0, "coalesced": 0, "ratelimited": 0, "retried": 0, "dead": 0}
        self._states: dict[str, _ChannelState] = {}
        self._stats_lock = threading.Lock()
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self._forget = redis.register_script(_FORGET_IF_EMPTY)

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    def _state(self, channel: str) -> _ChannelState:
        return self._states.setdefault(channel, _ChannelState())

    def _hold_lock(self, channel: str) -> bool:
        key = keys.outbox_sender(channel)
        if self.redis.set(key, self.owner, nx=True, px=self.lock_ttl_ms):
            return True
        return bool(self._extend(keys=[key], args=[self.owner, self.lock_ttl_ms]))

    def channels(self) -> list[str]:
        return sorted(_text(c) for c in self.redis.smembers(keys.outbox_channels()))

    def _head(self, channel: str) -> tuple[Entry, int] | None:
        """The entry to send next and how many list items it stands for (collapsed updates)."""
        key = keys.outbox(channel)
        raw = self.redis.lindex(key, 0)
        if raw is None:
            return None
        try:
            entry = Entry.from_json(raw)
        except (ValueError, TypeError) as exc:
            self._dead(channel, {"raw": _text(raw)}, f"unreadable entry: {exc}", 1)
            return self._head(channel)
        consumed = 1
        if entry.op == "update":
            for item in self.redis.lrange(key, 1, COALESCE_WINDOW - 1):
                try:
                    nxt = Entry.from_json(item)
                except (ValueError, TypeError):
                    break
                if nxt.op != "update" or nxt.slot != entry.slot:
                    break
                entry, consumed = nxt, consumed + 1
        return entry, consumed

    def _remove(self, channel: str, count: int) -> None:
        self.redis.ltrim(keys.outbox(channel), count, -1)

    def _dead(self, channel: str, entry: dict[str, Any], reason: str, count: int) -> None:
        record = {
            "channel": channel,
            "entry": entry,
            "error": reason,
            "at": time.time(),
            "sender": self.owner,
        }
        self.redis.rpush(keys.outbox_dead_letters(), json.dumps(record))
        self._remove(channel, count)
        self._count("dead")
        log.error(
            "outbox: gave up on a %s to %s: %s (kept in %s)",
            entry.get("op", "call"),
            channel,
            reason,
            keys.outbox_dead_letters(),
        )

    def _slot_ts(self, slot: str | None) -> str | None:
        if slot is None:
            return None
        value = self.redis.get(keys.slot(slot))
        return _text(value) if value is not None else None

    def _call(self, entry: Entry) -> Outcome:
        args = dict(entry.args)
        thread_ts = self._slot_ts(entry.thread_slot)
        if entry.thread_slot and thread_ts is None:
            log.warning(
                "outbox: thread %s has no message yet; posting to %s itself", entry.thread_slot, entry.channel
            )
        if entry.op == "post":
            response = self.client.chat_postMessage(channel=entry.channel, thread_ts=thread_ts, **args)
            if entry.slot:
                self.redis.set(keys.slot(entry.slot), str(response["ts"]), ex=SLOT_TTL)
        elif entry.op == "update":
            ts = self._slot_ts(entry.slot)
            if ts is None:
                return Outcome(
                    "dead", f"no message was posted under slot {entry.slot!r}, so it cannot be edited"
                )
            self.client.chat_update(channel=entry.channel, ts=ts, **args)
        elif entry.op == "ephemeral":
            self.client.chat_postEphemeral(channel=entry.channel, thread_ts=thread_ts, **args)
        elif entry.op == "upload":
            encoded = args.pop("content_b64", None)
            content = base64.b64decode(encoded) if encoded is not None else args.pop("content")
            self.client.files_upload_v2(channel=entry.channel, thread_ts=thread_ts, content=content, **args)
        else:
            return self._respond(args["response_url"], args["payload"])
        return Outcome("sent")

    def _respond(self, url: str, payload: dict[str, Any]) -> Outcome:
        response = WebhookClient(url, timeout=self.client.timeout, retry_handlers=[]).send_dict(payload)
        if response.status_code == 200:
            return Outcome("sent")
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
            return Outcome("wait", "ratelimited", float(retry_after or 1))
        if response.status_code >= 500:
            return Outcome("retry", f"HTTP {response.status_code}")
        return Outcome("dead", f"response_url refused it: HTTP {response.status_code} {response.body[:200]}")

    def _send(self, entry: Entry) -> Outcome:
        try:
            return self._call(entry)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
            if status == 429:
                retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                    "retry-after"
                )
                return Outcome("wait", "ratelimited", float(retry_after or 1))
            if status >= 500 or error in TRANSIENT_ERRORS:
                return Outcome("retry", f"HTTP {status} {error}".strip())
            details = exc.response.get("errors") if isinstance(exc.response.data, dict) else None
            return Outcome(
                "dead",
                f"Slack answered {error or 'HTTP ' + str(status)}" + (f": {details}" if details else ""),
            )
        except (SlackRequestError, OSError) as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")

    def service(self, channel: str) -> int:
        """Send the channel's due entries until it is empty or must wait; returns how many were handled."""
        state = self._state(channel)
        handled = 0
        while True:
            if state.not_before > time.monotonic() or not self._hold_lock(channel):
                return handled
            head = self._head(channel)
            if head is None:
                self._forget(keys=[keys.outbox(channel), keys.outbox_channels()], args=[channel])
                self._release(keys=[keys.outbox_sender(channel)], args=[self.owner])
                return handled
            entry, consumed = head
            method = METHOD[entry.op]
            wait = self.pacer.acquire(channel, method)
            if wait > 0:
                state.not_before = time.monotonic() + wait
                return handled
            outcome = self._send(entry)
            if outcome.kind == "wait":
                self._count("ratelimited")
                self.pacer.hold(channel, outcome.retry_after, method)
                state.not_before = time.monotonic() + outcome.retry_after
                log.info(
                    "outbox: %s rate limited on %s, waiting %.0f s", method, channel, outcome.retry_after
                )
                return handled
            if outcome.kind == "retry":
                if self._retry_later(channel, state, entry, outcome, consumed, time.monotonic()):
                    return handled
            elif outcome.kind == "dead":
                self._dead(channel, json.loads(entry.to_json()), outcome.reason, consumed)
            else:
                self._remove(channel, consumed)
                self._count("sent")
                self._count("coalesced", consumed - 1)
            state.failures, state.first_failure = 0, None
            handled += consumed

    def _retry_later(
        self, channel: str, state: _ChannelState, entry: Entry, outcome: Outcome, consumed: int, now: float
    ) -> bool:
        """True when the channel must wait before retrying; False once the entry was dead-lettered."""
        state.failures += 1
        state.first_failure = state.first_failure or now
        if now - state.first_failure >= self.retry_budget:
            reason = f"still failing after {now - state.first_failure:.0f} s: {outcome.reason}"
            self._dead(channel, json.loads(entry.to_json()), reason, consumed)
            return False
        delay = backoff_delay(state.failures, self.backoff_base, self.backoff_cap)
        state.not_before = now + delay
        self._count("retried")
        log.warning("outbox: %s to %s failed (%s); retry in %.1f s", entry.op, channel, outcome.reason, delay)
        return True

    def drain_once(self) -> int:
        """One pass over all channels in this thread, sending whatever is due now; returns entries handled."""
        return sum(self.service(channel) for channel in self.channels())

    def drain(self, timeout: float) -> bool:
        """Send until every outbox is empty (True) or `timeout` seconds pass (False). For tests and drills."""
        stop = threading.Event()
        worker = threading.Thread(target=self.run_forever, args=(stop,), name="outbox-drain", daemon=True)
        worker.start()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.channels():
                    return True
                time.sleep(0.02)
            return not self.channels()
        finally:
            stop.set()
            worker.join()

    def run_forever(self, stop_event: threading.Event, poll: float = 0.2) -> None:
        """Serve every channel until stop_event is set; each channel runs as its own task in a small pool."""
        in_flight: dict[str, Future[int]] = {}
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="outbox") as pool:
            while not stop_event.is_set():
                for channel, future in list(in_flight.items()):
                    if future.done():
                        del in_flight[channel]
                        if future.exception() is not None:
                            log.error("outbox: sender for %s failed: %r", channel, future.exception())
                            self._state(channel).not_before = time.monotonic() + poll * 5
                try:
                    soonest = self._dispatch(pool, in_flight, poll)
                except RedisError as exc:
                    log.error("outbox: cannot reach Redis (%s); retrying in %.0f s", exc, poll * 5)
                    soonest = poll * 5
                stop_event.wait(max(0.01, soonest if not in_flight else min(soonest, 0.02)))

    def _dispatch(self, pool: ThreadPoolExecutor, in_flight: dict[str, Future[int]], poll: float) -> float:
        """Start a task per due channel and keep the locks of waiting ones; returns seconds to the next."""
        now = time.monotonic()
        soonest = poll
        for channel in self.channels():
            if channel in in_flight:
                continue
            wait = self._state(channel).not_before - now
            if wait <= 0:
                in_flight[channel] = pool.submit(self.service, channel)
            else:
                soonest = min(soonest, wait)
                self._extend(keys=[keys.outbox_sender(channel)], args=[self.owner, self.lock_ttl_ms])
        return soonest
