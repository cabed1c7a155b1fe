"""Sends the outbox to Slack: per channel, in order, paced, retried, never silently dropped.

- One sender per channel at a time across all replicas (keys.outbox_sender(channel), a lock with a TTL).
  The lock is extended while a Slack call is in flight, so a slow call (an upload is three HTTP requests)
  does not let another sender take the channel and send the same entry again.
- An entry leaves the outbox only through one Lua step that checks, atomically, that this sender still
  holds the channel's lock and that the head of the list is still exactly the entries it sent (by the
  digest of each stored entry, which carries the entry's unique id). A sender that lost its lock
  removes nothing and stops serving the channel, so it can never trim an entry it did not send.
- A 429 holds that channel for Retry-After seconds; the call stays at the head and is sent again.
- 5xx and connection errors are retried with exponential backoff for up to `retry_budget` seconds;
  after that the entry goes to the dead-letter list (keys.outbox_dead_letters()) with an error log.
- ok:false errors that cannot succeed later (invalid_blocks, channel_not_found, …) are dead-lettered
  at once, logged with the reason.
- Channels are independent: each is served by its own task, so a held channel delays nobody else.

Delivery is at least once, never less: an entry Slack accepted is sent again only when its sender could
not remove it, i.e. the process died between Slack's answer and the removal, or it could not reach Redis
to remove it, or to keep its lock for a whole TTL while the call was in flight. The lock TTL is
`lock_ttl` seconds, by default DRBOT_OUTBOX_LOCK_TTL or 30; a channel whose sender died waits that long
for the next one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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

EXTEND_IF_OWNER = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
"""Lua: extend the lock KEYS[1] to ARGV[2] ms if ARGV[1] holds it (1), else 0. The notifier's lease too."""
RELEASE_IF_OWNER = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
"""Lua: delete the lock KEYS[1] if ARGV[1] holds it."""
_FORGET_IF_EMPTY = (
    "if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end return 0"
)
_TAKE = """
-- KEYS: the channel's sender lock, its outbox, the dead letters.
-- ARGV: the sender's owner id, a dead-letter record ('' when the call was sent), then the digests of the
-- entries handled, in list order. Removes them only if the lock is ours and they are still the head.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 3, #ARGV do
  local raw = redis.call('LINDEX', KEYS[2], i - 3)
  if not raw or redis.sha1hex(raw) ~= ARGV[i] then return -1 end
end
if ARGV[2] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[2]) end
redis.call('LTRIM', KEYS[2], #ARGV - 2, -1)
return 1
"""
LOCK_TTL_ENV = "DRBOT_OUTBOX_LOCK_TTL"


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment variable `name`, or `default` when it is unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"{name} must be a number of seconds above 0, got {raw!r}")
    return value


def digest(raw: str | bytes) -> str:
    """The identity of a stored entry as the take script computes it (redis.sha1hex). Each entry carries
    a unique id, so its digest names that one entry; hashing the stored bytes instead of parsing JSON in
    Lua means Python and Redis can never disagree about which entry is at the head."""
    return hashlib.sha1(raw.encode() if isinstance(raw, str) else raw).hexdigest()


class NotOwner(Exception):
    """The channel's head is not ours to remove (its lock passed to another sender, or the head is not
    what was sent): stop serving the channel and leave the head where it is."""


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
class Head:
    """The entry to send next and the digests of the list items it stands for (collapsed updates)."""

    entry: Entry
    digests: list[str]


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
        lock_ttl: float | None = None,
        retry_budget: float = 600.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        max_parallel: int = 4,
        owner: str | None = None,
    ) -> None:
        self.redis = redis
        self.client = web_client
        self.pacer = pacer or Pacer()
        self.lock_ttl_ms = int((lock_ttl or env_seconds(LOCK_TTL_ENV, 30.0)) * 1000)
        self.retry_budget = retry_budget
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_parallel = max_parallel
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = {"sent": 0, "coalesced": 0, "ratelimited": 0, "retried": 0, "dead": 0, "lost_lock": 0}
        self._states: dict[str, _ChannelState] = {}
        self._stats_lock = threading.Lock()
        self._extend = redis.register_script(EXTEND_IF_OWNER)
        self._release = redis.register_script(RELEASE_IF_OWNER)
        self._forget = redis.register_script(_FORGET_IF_EMPTY)
        self._take_script = redis.register_script(_TAKE)

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    def _state(self, channel: str) -> _ChannelState:
        return self._states.setdefault(channel, _ChannelState())

    def _hold_lock(self, channel: str) -> bool:
        key = keys.outbox_sender(channel)
        if self.redis.set(key, self.owner, nx=True, px=self.lock_ttl_ms):
            # A fresh hold: failures counted before belong to a head others may have sent since.
            self._states[channel] = _ChannelState()
            return True
        return bool(self._extend(keys=[key], args=[self.owner, self.lock_ttl_ms]))

    @contextmanager
    def _lock_kept(self, channel: str) -> Iterator[None]:
        """Extend the channel's lock every third of its TTL while the block runs (a Slack call, which
        may outlast the TTL); stops once the lock turns out to be someone else's."""
        done = threading.Event()
        key = keys.outbox_sender(channel)

        def keep() -> None:
            while not done.wait(self.lock_ttl_ms / 3000):
                try:
                    if not self._extend(keys=[key], args=[self.owner, self.lock_ttl_ms]):
                        log.warning("outbox: lost the lock of %s during a Slack call", channel)
                        return
                except RedisError as exc:
                    # Keep trying: the take script decides at the end whether the lock is still ours.
                    log.warning("outbox: cannot extend the lock of %s: %s", channel, exc)

        keeper = threading.Thread(target=keep, name=f"outbox-lock-{channel}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def channels(self) -> list[str]:
        return sorted(_text(c) for c in self.redis.smembers(keys.outbox_channels()))

    def _head(self, channel: str) -> Head | None:
        """The entry to send next and the items it stands for (consecutive updates of one slot collapse)."""
        key = keys.outbox(channel)
        raw = self.redis.lindex(key, 0)
        if raw is None:
            return None
        try:
            entry = Entry.from_json(raw)
        except (ValueError, TypeError) as exc:
            self._dead(channel, {"raw": _text(raw)}, f"unreadable entry: {exc}", [digest(raw)])
            return self._head(channel)
        head = Head(entry, [digest(raw)])
        if entry.op == "update":
            for item in self.redis.lrange(key, 1, COALESCE_WINDOW - 1):
                try:
                    nxt = Entry.from_json(item)
                except (ValueError, TypeError):
                    break
                if nxt.op != "update" or nxt.slot != entry.slot:
                    break
                head.entry = nxt
                head.digests.append(digest(item))
        return head

    def _take(self, channel: str, digests: list[str], dead_record: str = "") -> None:
        """Remove the handled entries (dead-lettering them when `dead_record` is given), only while this
        sender holds the channel's lock and they are still its head; raises NotOwner otherwise."""
        answer = self._take_script(
            keys=[keys.outbox_sender(channel), keys.outbox(channel), keys.outbox_dead_letters()],
            args=[self.owner, dead_record, *digests],
        )
        if answer == 0:
            raise NotOwner(f"the lock of {channel} passed to another sender; leaving the head to it")
        if answer != 1:
            raise NotOwner(f"the head of {channel} is not what was sent; leaving it to be read again")

    def _dead(self, channel: str, entry: dict[str, Any], reason: str, digests: list[str]) -> None:
        record = {
            "channel": channel,
            "entry": entry,
            "error": reason,
            "at": time.time(),
            "sender": self.owner,
        }
        self._take(channel, digests, json.dumps(record))
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
        handled = 0
        try:
            while count := self._service_one(channel):
                handled += count
        except NotOwner as lost:
            self._count("lost_lock")
            log.warning("outbox: %s", lost)
        return handled

    def _service_one(self, channel: str) -> int:
        """Send the channel's head if it is due; returns the list items handled, 0 when the channel is
        empty or must wait."""
        if self._state(channel).not_before > time.monotonic() or not self._hold_lock(channel):
            return 0
        state = self._state(channel)
        head = self._head(channel)
        if head is None:
            self._forget(keys=[keys.outbox(channel), keys.outbox_channels()], args=[channel])
            self._release(keys=[keys.outbox_sender(channel)], args=[self.owner])
            return 0
        method = METHOD[head.entry.op]
        wait = self.pacer.acquire(channel, method)
        if wait > 0:
            state.not_before = time.monotonic() + wait
            return 0
        with self._lock_kept(channel):
            outcome = self._send(head.entry)
        if outcome.kind == "wait":
            self._count("ratelimited")
            self.pacer.hold(channel, outcome.retry_after, method)
            state.not_before = time.monotonic() + outcome.retry_after
            log.info("outbox: %s rate limited on %s, waiting %.0f s", method, channel, outcome.retry_after)
            return 0
        if outcome.kind == "retry":
            if self._retry_later(channel, state, head, outcome, time.monotonic()):
                return 0
        elif outcome.kind == "dead":
            self._dead(channel, json.loads(head.entry.to_json()), outcome.reason, head.digests)
        else:
            self._take(channel, head.digests)
            self._count("sent")
            self._count("coalesced", len(head.digests) - 1)
        state.failures, state.first_failure = 0, None
        return len(head.digests)

    def _retry_later(
        self, channel: str, state: _ChannelState, head: Head, outcome: Outcome, now: float
    ) -> bool:
        """True when the channel must wait before retrying; False once the entry was dead-lettered."""
        state.failures += 1
        state.first_failure = state.first_failure or now
        if now - state.first_failure >= self.retry_budget:
            reason = f"still failing after {now - state.first_failure:.0f} s: {outcome.reason}"
            self._dead(channel, json.loads(head.entry.to_json()), reason, head.digests)
            return False
        delay = backoff_delay(state.failures, self.backoff_base, self.backoff_cap)
        state.not_before = now + delay
        self._count("retried")
        log.warning(
            "outbox: %s to %s failed (%s); retry in %.1f s", head.entry.op, channel, outcome.reason, delay
        )
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
