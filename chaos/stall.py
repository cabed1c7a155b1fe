"""A guard against a run that no longer moves: when a running run's journal has not grown for `seconds`
(the slowest restore step takes about a minute on the twin), alice aborts it and what it was doing is
kept as evidence. A stalled run is a finding, and it must not eat the rest of the suite's time."""

from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import RedisError

from chaos.figures import Figure
from chaos.journal import excerpt
from chaos.scene import Scene
from drbot.stage import CHANNEL
from workers import keys
from workers.journal import Journal
from workers.runs import RUNNING

log = logging.getLogger(__name__)

STALL = 300.0


class StallGuard:
    def __init__(self, current: Scene, procedure: str, seconds: float = STALL) -> None:
        self.scene = current
        self.procedure = procedure
        self.seconds = seconds
        self.stalled: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guard, name="stall guard", daemon=True)

    def __enter__(self) -> StallGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figure(self, scenario: str) -> Figure:
        name = f"runs stalled (no journal entry for {self.seconds:.0f} s)"
        return Figure(scenario, name, len(self.stalled), 0, self.stalled)

    def _guard(self) -> None:
        seen, moved = (-1, ""), time.monotonic()
        while not self._stop.wait(2.0):
            try:
                run = self.scene.latest_run(self.procedure)
                if run is None or run.status != RUNNING:
                    moved = time.monotonic()  # waiting for a person, or over: nothing is stuck
                    continue
                now = (self.scene.stage.redis().llen(keys.journal(run.id)), run.id)
            except RedisError:
                continue
            if now != seen:
                seen, moved = now, time.monotonic()
            elif time.monotonic() - moved > self.seconds:
                tail = Journal(self.scene.stage.redis(), run.id).entries()[-6:]
                self.stalled.append(
                    f"run {run.id}: no journal entry for {self.seconds:.0f} s at step {run.step_index}, "
                    f"showing {run.progress}; alice aborted it. Journal tail:\n{excerpt(tail)}"
                )
                log.error("run %s stalled; alice aborts it", run.id)
                self.scene.stage.slack.slash("U0ALICE", CHANNEL, f"abort {run.id}")
                moved = time.monotonic()
