"""The notifier: turns the engine's events into Slack messages, through the outbox.

It reads the events stream with a consumer group (so several bot replicas share the work and a
crash re-reads what was not acknowledged) and renders from the run's current state in Redis.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from bot.outbox import Outbox
from bot.render import status_message, step_finished
from bot.render_csr import csr_panel
from procedures.clusters import Clusters
from procedures.i18n import Msg, t
from procedures.steps import Procedure
from workers import events, keys
from workers.gates import load_gate
from workers.runs import Run, RunStore

log = logging.getLogger(__name__)

GROUP = "notifier"


def status_slot(run_id: str) -> str:
    return f"run:{run_id}:status"


class Notifier:
    def __init__(
        self,
        redis: Redis,
        outbox: Outbox,
        procedures: dict[str, Procedure],
        clusters: Clusters,
        language_of: Any,
    ) -> None:
        self.redis = redis
        self.outbox = outbox
        self.procedures = procedures
        self.clusters = clusters
        self.language_of = language_of
        self.runs = RunStore(redis)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(keys.events(), GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def run_forever(self, stop: threading.Event) -> None:
        self.ensure_group()
        backlog = True
        while not stop.is_set():
            try:
                handled = self.process(block_ms=500, backlog=backlog)
                backlog = backlog and handled > 0
            except RedisError as error:
                log.error("notifier cannot reach Redis: %s", error)
                stop.wait(1.0)

    def process(self, block_ms: int = 0, backlog: bool = False) -> int:
        """Handle one batch; `backlog` first re-reads events this consumer took but did not acknowledge."""
        start = "0" if backlog else ">"
        batches = self.redis.xreadgroup(
            GROUP, self.consumer, {keys.events(): start}, count=100, block=None if backlog else block_ms
        )
        handled = 0
        for _, items in batches or []:
            for event_id, fields in items:
                try:
                    self.handle(*events.decode(fields))
                except Exception:
                    log.exception("cannot render event %s", event_id)
                self.redis.xack(keys.events(), GROUP, event_id)
                handled += 1
        return handled

    def handle(self, event: str, run_id: str, data: dict[str, Any]) -> None:
        run = self.runs.load(run_id)
        if run is None:
            return
        procedure = self.procedures[run.procedure]
        language = self.language_of(run)
        slot = status_slot(run.id)
        if event == events.RUN_STARTED:
            text, blocks = self._status(run, procedure, language)
            self.outbox.post(run.channel, text, blocks, slot=slot)
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
            self.outbox.post(run.channel, text, blocks, thread_slot=slot)
            if long_output:
                self.outbox.upload(
                    run.channel, f"{run.id}-{data['step']}.log", long_output, title=title, thread_slot=slot
                )
        elif event == events.STEP_SKIPPED:
            title = t(procedure.step(data["step"]).title, language)
            reason = t(Msg.from_json(data["reason"]), language)
            self.outbox.post(
                run.channel, t("thread.skipped", language, step=title, reason=reason), thread_slot=slot
            )
        elif event == events.GATE_OPENED:
            self.outbox.post(run.channel, self._gate_notice(run, data, language), thread_slot=slot)
        elif event == events.GATE_CLOSED:
            self.outbox.post(
                run.channel,
                t("thread.decided", language, user=data["by"], value=data["value"], step=data["step"]),
                thread_slot=slot,
            )
        elif event == events.PANEL:
            self._panel(run, data, language)
        elif event == events.NOTE:
            who = f"<@{data['who']}> " if data["who"].startswith(("U", "W")) else ""
            self.outbox.post(run.channel, who + t(Msg.from_json(data["text"]), language), thread_slot=slot)
        elif event == events.RUN_RETRIED:
            self.outbox.post(
                run.channel, t("thread.retried", language, user=data["by"], run=run.id), thread_slot=slot
            )
        elif event == events.RUN_FINISHED:
            self.outbox.post(
                run.channel, t(f"thread.run_{data['status']}", language, run=run.id), thread_slot=slot
            )
        text, blocks = self._status(run, procedure, language)
        self.outbox.update(run.channel, slot, text, blocks)

    def _panel(self, run: Run, data: dict[str, Any], language: str) -> None:
        """A step's panel is its own top-level message, posted once and then edited in place."""
        key = keys.panel(data["token"])
        stored = {k.decode(): v.decode() for k, v in self.redis.hgetall(key).items()}
        if not stored or stored.get("panel") != "csr":
            return
        text, blocks = csr_panel(data["token"], json.loads(stored["data"]), language)
        slot = f"run:{run.id}:panel:{data['step']}"
        if self.redis.hsetnx(key, "posted", "1"):
            self.outbox.post(run.channel, text, blocks, slot=slot)
        else:
            self.outbox.update(run.channel, slot, text, blocks)

    def _status(self, run: Run, procedure: Procedure, language: str) -> tuple[str, list[dict[str, Any]]]:
        gate = load_gate(self.redis, run.gate) if run.gate else None
        return status_message(run, procedure, gate, language)

    def _gate_notice(self, run: Run, data: dict[str, Any], language: str) -> str:
        cluster = self.clusters.by_name.get(run.cluster)
        approvers = " ".join(f"<@{a}>" for a in cluster.approvers) if cluster else ""
        return t(f"thread.gate.{data['kind']}", language, step=data["step"], approvers=approvers or "-")
