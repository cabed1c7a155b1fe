"""The notifier: turns the engine's events into Slack messages, through the outbox.

It renders each event from the run's current state in Redis, so Slack stays a view of Redis.

With several bot replicas, exactly one notifier is active: the replica holding keys.notifier_lease()
(a token with a TTL, renewed while it works). The others stand by and take the lease over when it
lapses (the holder died or lost Redis), or at once when the holder shuts down and gives it back.
The active notifier reads the events stream from keys.notifier_cursor() and, for each event, writes
the event's outbox entries and the cursor's new position in one MULTI/EXEC that WATCHes the lease and
checks its token. So a notifier that lost its lease (paused, cut off) writes nothing, the next holder
re-reads the cursor and continues at the first event not yet written, and every event becomes outbox
entries exactly once, in stream order. A run's messages go to its channel's outbox, which the sender
sends in order, so they reach Slack in the order the workers reported them.

Why one active notifier rather than sharing the events: the consumer group this replaced handed
consecutive events of one run to different replicas, which pushed them to the outbox out of order, and
events taken by a replica that died stayed pending until someone claimed them. Routing by run would
need replica membership and an ordered hand-over of each run when replicas come and go. Rendering an
event costs a few Redis reads, far less than the one message a second per channel that Slack accepts,
and the slow part, the Slack calls, is still shared by all replicas through the outbox's per-channel
sender locks; one active notifier is therefore no bottleneck, and the simplest correct choice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.outbox import Outbox
from bot.outbox_sender import EXTEND_IF_OWNER, RELEASE_IF_OWNER, env_seconds
from bot.render import shown, status_message, step_finished
from bot.render_csr import csr_panel
from procedures.clusters import Clusters
from procedures.i18n import Msg, t
from procedures.steps import Procedure
from workers import events, keys
from workers.gates import load_gate
from workers.runs import Run, RunStore

log = logging.getLogger(__name__)

LEASE_TTL_ENV = "DRBOT_NOTIFIER_LEASE_TTL"
"""Seconds the notifier lease lasts without renewal (default 10): how long events wait after the
active replica dies."""
BATCH = 100
LEGACY_GROUP = "notifier"
"""The consumer group earlier versions read the events with; a first start continues where it was."""


def status_slot(run_id: str) -> str:
    return f"run:{run_id}:status"


class LeaseLost(Exception):
    """This replica no longer holds the notifier lease: it writes nothing more and stands by."""


class Notifier:
    def __init__(
        self,
        redis: Redis,
        outbox: Outbox,
        procedures: dict[str, Procedure],
        clusters: Clusters,
        language_of: Any,
        *,
        lease_ttl: float | None = None,
    ) -> None:
        self.redis = redis
        self.outbox = outbox
        self.procedures = procedures
        self.clusters = clusters
        self.language_of = language_of
        self.runs = RunStore(redis)
        self.lease_ms = int((lease_ttl or env_seconds(LEASE_TTL_ENV, 10.0)) * 1000)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.token: str | None = None
        """The lease's value while this replica holds it: owner plus a fresh suffix for each term, so a
        term that lapsed can never be mistaken for the next one."""
        self.cursor = "0"
        self._renew = redis.register_script(EXTEND_IF_OWNER)
        self._resign = redis.register_script(RELEASE_IF_OWNER)

    def run_forever(self, stop: threading.Event) -> None:
        """Be the active notifier while this replica holds the lease, stand by otherwise; give the
        lease back on the way out so another replica takes over at once."""
        try:
            while not stop.is_set():
                self._turn(stop)
        finally:
            self.resign()

    def _turn(self, stop: threading.Event) -> None:
        try:
            if self.hold_lease():
                self.process(block_ms=min(500, self.lease_ms // 3))
            else:
                stop.wait(min(1.0, self.lease_ms / 4000))
        except LeaseLost:
            log.warning("notifier: lost the lease %s; standing by", self.token)
            self.token = None
        except RedisError as error:
            log.error("notifier cannot reach Redis: %s", error)
            stop.wait(1.0)

    def hold_lease(self) -> bool:
        """Renew the lease, or take it when it is free; a new term re-reads the cursor, since another
        replica may have moved it meanwhile. False when another replica holds it."""
        lease = keys.notifier_lease()
        if self.token is not None and self._renew(keys=[lease], args=[self.token, self.lease_ms]):
            return True
        token = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        if not self.redis.set(lease, token, nx=True, px=self.lease_ms):
            self.token = None
            return False
        self.token = token
        self.cursor = self._stored_cursor()
        log.info("notifier: active as %s, after event %s", token, self.cursor)
        return True

    def resign(self) -> None:
        if self.token is None:
            return
        try:
            self._resign(keys=[keys.notifier_lease()], args=[self.token])
        except RedisError as error:
            log.warning("notifier: could not give the lease back (%s); it lapses by itself", error)
        self.token = None

    def _stored_cursor(self) -> str:
        stored = self.redis.get(keys.notifier_cursor())
        if stored is not None:
            return stored.decode()
        # First start: continue after what the consumer group of earlier versions delivered, rather
        # than posting the whole stream again; with no such group, from the start as that group did.
        try:
            groups = self.redis.xinfo_groups(keys.events())
        except ResponseError:
            return "0"
        for group in groups:
            if _text(group["name"]) == LEGACY_GROUP:
                return _text(group["last-delivered-id"])
        return "0"

    def process(self, block_ms: int = 0) -> int:
        """Turn the events after the cursor into outbox entries, one batch (waiting up to `block_ms` for
        one); returns how many were handled. Raises LeaseLost when the lease is not this replica's."""
        batches = self.redis.xread({keys.events(): self.cursor}, count=BATCH, block=block_ms or None)
        handled = 0
        for _, items in batches or []:
            for event_id, fields in items:
                self._commit(_text(event_id), fields)
                handled += 1
        return handled

    def _commit(self, event_id: str, fields: dict[bytes, bytes]) -> None:
        """Write the event's outbox entries and move the cursor past it, together. An event that cannot
        be rendered is logged and skipped, as one broken event must not hold back every later message;
        a lost lease or an unreachable Redis stops the batch, and the event is read again."""
        try:
            self._transaction(event_id, lambda pipe: self.handle(*events.decode(fields), pipe))
        except (LeaseLost, RedisConnectionError, RedisTimeoutError):
            raise
        except Exception:
            log.exception("cannot render event %s; skipping it", event_id)
            self._transaction(event_id, None)
        self.cursor = event_id

    def _transaction(self, event_id: str, render: Callable[[Pipeline], None] | None) -> None:
        lease = keys.notifier_lease()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(lease)
            if self.token is None or pipe.get(lease) != self.token.encode():
                raise LeaseLost(self.token)
            pipe.multi()
            if render is not None:
                render(pipe)
            pipe.set(keys.notifier_cursor(), event_id)
            try:
                pipe.execute()
            except WatchError as error:
                raise LeaseLost(self.token) from error

    def handle(self, event: str, run_id: str, data: dict[str, Any], pipe: Pipeline) -> None:
        """Queue the event's messages into `pipe` (a transaction in MULTI state)."""
        outbox = self.outbox.within(pipe)
        run = self.runs.load(run_id)
        if run is None:
            return
        procedure = self.procedures[run.procedure]
        language = self.language_of(run)
        slot = status_slot(run.id)
        if event == events.RUN_STARTED:
            text, blocks = self._status(run, procedure, language)
            outbox.post(run.channel, text, blocks, slot=slot)
            return
        if event == events.STEP_FINISHED:
            title = t(procedure.step(data["step"]).title, language)
            text, blocks, long_output = step_finished(
                title,
                data["ok"],
                Msg.from_json(data["summary"]),
                data["duration"],
                data.get("details", ""),
                language,
            )
            outbox.post(run.channel, text, blocks, thread_slot=slot)
            if long_output:
                outbox.upload(
                    run.channel, f"{run.id}-{data['step']}.log", long_output, title=title, thread_slot=slot
                )
        elif event == events.STEP_SKIPPED:
            title = t(procedure.step(data["step"]).title, language)
            reason = shown(Msg.from_json(data["reason"]), language)
            outbox.post(
                run.channel, t("thread.skipped", language, step=title, reason=reason), thread_slot=slot
            )
        elif event == events.GATE_OPENED:
            outbox.post(run.channel, self._gate_notice(run, data, language), thread_slot=slot)
        elif event == events.GATE_CLOSED:
            outbox.post(
                run.channel,
                t("thread.decided", language, user=data["by"], value=data["value"], step=data["step"]),
                thread_slot=slot,
            )
        elif event == events.PANEL:
            self._panel(run, data, language, outbox, pipe)
        elif event == events.NOTE:
            who = f"<@{data['who']}> " if data["who"].startswith(("U", "W")) else ""
            outbox.post(run.channel, who + shown(Msg.from_json(data["text"]), language), thread_slot=slot)
        elif event == events.RUN_RETRIED:
            outbox.post(
                run.channel, t("thread.retried", language, user=data["by"], run=run.id), thread_slot=slot
            )
        elif event == events.RUN_FINISHED:
            outbox.post(
                run.channel, t(f"thread.run_{data['status']}", language, run=run.id), thread_slot=slot
            )
        text, blocks = self._status(run, procedure, language)
        outbox.update(run.channel, slot, text, blocks)

    def _panel(self, run: Run, data: dict[str, Any], language: str, outbox: Outbox, pipe: Pipeline) -> None:
        """A step's panel is its own top-level message, posted once and then edited in place. The
        "posted" mark joins the post's transaction, so it never exists without the post."""
        key = keys.panel(data["token"])
        stored = {k.decode(): v.decode() for k, v in self.redis.hgetall(key).items()}
        if not stored or stored.get("panel") != "csr":
            return
        text, blocks = csr_panel(data["token"], json.loads(stored["data"]), language)
        slot = f"run:{run.id}:panel:{data['step']}"
        if "posted" not in stored:
            pipe.hset(key, "posted", "1")
            outbox.post(run.channel, text, blocks, slot=slot)
        else:
            outbox.update(run.channel, slot, text, blocks)

    def _status(self, run: Run, procedure: Procedure, language: str) -> tuple[str, list[dict[str, Any]]]:
        gate = load_gate(self.redis, run.gate) if run.gate else None
        return status_message(run, procedure, gate, language)

    def _gate_notice(self, run: Run, data: dict[str, Any], language: str) -> str:
        cluster = self.clusters.by_name.get(run.cluster)
        approvers = " ".join(f"<@{a}>" for a in cluster.approvers) if cluster else ""
        return t(f"thread.gate.{data['kind']}", language, step=data["step"], approvers=approvers or "-")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
