"""The reaper: finds runs whose worker died (running, no lease, nothing queued) and queues them again."""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

from workers import keys
from workers.queue import enqueue_advance
from workers.runs import RUNNING, RunStore

log = logging.getLogger(__name__)


def reap(redis: Redis) -> list[str]:
    revived = []
    for run in RunStore(redis).active():
        if run.status == RUNNING and not redis.exists(keys.lease(run.id)) and enqueue_advance(redis, run.id):
            revived.append(run.id)
    if revived:
        log.warning("re-queued runs whose worker stopped: %s", ", ".join(revived))
    return revived


def reap_forever(redis: Redis, stop: threading.Event, every: float = 2.0) -> None:
    while not stop.wait(every):
        try:
            reap(redis)
        except RedisError as error:
            log.error("reaper cannot reach Redis: %s", error)
