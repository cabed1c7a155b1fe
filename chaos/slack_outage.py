"""Scenario: Slack answers every Web API call with 503, 429 (Retry-After: 1) or 500, in turn, for a
minute, while alice runs backups and types notes. Once Slack is back, every message drbot queued must
arrive, once, in the order it was queued in its channel (chaos/outbox_audit.py).

The outage uses the simulator's fault mode (faults answer the next calls; the scenario keeps a few
queued until the minute is over, then clears them).
"""

from __future__ import annotations

import logging
import threading
import time

from chaos import exactly_once
from chaos.figures import Figure
from chaos.outbox_audit import OutboxWatch, compare
from chaos.scene import Scene, scene
from drbot.drills.common import started_run, wait_for_run_end
from drbot.stage import CHANNEL, StageError
from workers import keys

log = logging.getLogger(__name__)

NAME = "Slack 5xx/429"
STATUSES = (503, 429, 500)
QUEUED = 5
"""Faults kept ready while the outage lasts: always more than the calls that arrive in one check."""
DRAIN_TIMEOUT = 300.0


class Outage:
    def __init__(self, current: Scene, seconds: float) -> None:
        self.slack = current.stage.slack
        self.seconds = seconds
        self.started = self.ended = 0.0
        self._thread = threading.Thread(target=self._keep_failing, name="slack outage", daemon=True)

    def __enter__(self) -> Outage:
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()

    def _keep_failing(self) -> None:
        turn = 0
        try:
            while time.time() < self.started + self.seconds:
                while self.slack.server.faults.pending() < QUEUED:
                    self.slack.inject(STATUSES[turn % len(STATUSES)], count=1, retry_after=1)
                    turn += 1
                time.sleep(0.02)
        finally:
            self.slack.clear_faults()
            self.ended = time.time()


def run(seconds: float = 60.0, backups: int = 2, notes: int = 6) -> list[Figure]:
    with scene("slack") as current:
        # drbot serve has answered commands before Slack degrades, as a running bot would have: Bolt
        # verifies its token with auth.test on the first request and remembers the answer.
        current.stage.slack.slash("U0ALICE", CHANNEL, "help")
        watch = OutboxWatch(current.redis.port)
        try:
            with Outage(current, seconds) as outage:
                runs = _workload(current, seconds, backups, notes)
            drained = _until_drained(current)
        finally:
            watch.close()
        figures = _figures(current, outage, watch, runs, drained)
        current.keep = any(f.ok is False for f in figures)
    return figures


def _workload(current: Scene, seconds: float, backups: int, notes: int) -> list[str]:
    """Backups one after another and notes in between, spread over the outage."""
    slack, runs = current.stage.slack, []
    every = seconds / (notes + 1)
    deadline = time.monotonic() + seconds
    for index in range(notes):
        slack.slash("U0ALICE", CHANNEL, f"note chaos: Slack is down, note {index + 1}")
        if len(runs) < backups:
            _, body = slack.slash("U0ALICE", CHANNEL, f"backup {current.cluster.name}")
            runs.append(started_run(body))
        time.sleep(max(0.0, min(every, deadline - time.monotonic())))
    return runs


def _until_drained(current: Scene) -> bool:
    """Every outbox empty: what was queued during the outage has been sent (or given up on)."""
    redis = current.stage.redis()

    def empty() -> bool:
        channels = [c.decode() for c in redis.smembers(keys.outbox_channels())]
        return all(redis.llen(keys.outbox(channel)) == 0 for channel in channels)

    try:
        current.stage.wait_for(empty, DRAIN_TIMEOUT, "the outbox to drain", interval=0.5)
    except StageError:
        return False
    return True


def _figures(
    current: Scene, outage: Outage, watch: OutboxWatch, runs: list[str], drained: bool
) -> list[Figure]:
    redis, slack = current.stage.redis(), current.stage.slack
    for run_id in runs:
        wait_for_run_end(current.stage, run_id)
    calls = [c for c in slack.calls() if c.time >= outage.started]
    refused = [c for c in calls if outage.started <= c.time <= outage.ended and (c.status != 200 or c.error)]
    slots = {
        key.decode().removeprefix(keys.slot("")): value.decode()
        for key in redis.scan_iter(match=keys.slot("*"))
        if (value := redis.get(key)) is not None
    }
    result = compare(watch.entries, calls, slots)
    dead = [raw.decode()[:300] for raw in redis.lrange(keys.outbox_dead_letters(), 0, -1)]
    return [
        Figure(NAME, "outage (s)", round(outage.ended - outage.started, 1)),
        Figure(NAME, "calls Slack refused during the outage", len(refused)),
        Figure(NAME, "calls queued / delivered", f"{len(watch.entries)} / {result.sent}"),
        Figure(NAME, "outbox drained after the outage", "yes" if drained else "no", "yes"),
        Figure(NAME, "messages lost", len(result.lost), 0, result.lost),
        Figure(NAME, "messages given up on (dead letters)", len(dead), 0, dead),
        Figure(NAME, "messages delivered twice", len(result.duplicated), 0, result.duplicated),
        Figure(NAME, "messages out of order (per channel)", len(result.out_of_order), 0, result.out_of_order),
        exactly_once.not_ended(NAME, exactly_once.journal_of(current)),
        exactly_once.workers_quit(NAME, current),
    ]
