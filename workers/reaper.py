"""The reaper: finds runs that no worker holds (running, no lease, nothing queued) and queues them again.

A worker that died, or that stopped because it lost its lease or Redis, leaves its run like that.
Each revival is counted, with a backoff before the next one (1, 2, 4 … 60 s); the count goes back to
zero when a step finishes. A run that was revived MAX_REVIVALS times without a step finishing cannot
advance (a bug outside a step, a procedure an upgrade renamed): it is failed with the last error,
which the channel sees, and can be retried once fixed.
"""

from __future__ import annotations

import logging
import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from procedures.i18n import msg
from workers import events, transitions
from workers.queue import WAKE_SECONDS, enqueue_advance
from workers.runs import FAILED, RETENTION, RUNNING, RunStore
from workers.timeline import Timeline

log = logging.getLogger(__name__)

MAX_REVIVALS = 5
DRBOT = "drbot"


def reap(redis: Redis, now: float | None = None) -> list[str]:
    """Revive or give up on every running run that no worker holds; returns the revived run ids."""
    now = time.time() if now is None else now
    revived = []
    for run in RunStore(redis).active():
        if run.status != RUNNING:
            continue
        summary = msg("run.cannot_advance", revivals=MAX_REVIVALS, error=run.last_error or "-")
        failed = {
            "status": FAILED,
            "finished_at": repr(now),
            "result": {"summary": summary.to_json()},
            "progress": {},
        }
        answer = transitions.revive(
            redis, run.id, run.cluster, now, MAX_REVIVALS, WAKE_SECONDS, failed, RETENTION
        )
        if answer == "revive":
            enqueue_advance(redis, run.id, woken=True)
            revived.append(run.id)
        elif answer == "failed":
            log.error("run %s cannot advance (%s); failed it", run.id, run.last_error or "no error recorded")
            events.emit(redis, events.RUN_FINISHED, run.id, status=FAILED)
            Timeline(redis).append(run.channel, "run_finished", DRBOT, summary, run=run.id)
    if revived:
        log.warning("re-queued runs that no worker holds: %s", ", ".join(revived))
    return revived


def reap_forever(redis: Redis, stop: threading.Event, every: float = 2.0) -> None:
    while not stop.wait(every):
        try:
            reap(redis)
        except RedisError as error:
            log.error("reaper cannot reach Redis: %s", error)
