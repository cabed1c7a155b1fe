"""What an operator should know is stuck: cluster locks whose run has ended or vanished, and running
runs that no worker holds. `drbot doctor` prints them; `drbot unlock` and `/dr unlock` release a
stranded lock (workers/transitions.py), and the reaper revives unheld runs by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from workers import keys
from workers.runs import RUNNING, RunStore


@dataclass(frozen=True)
class StrandedLock:
    cluster: str
    run_id: str
    why: str
    """"finished: <status>" or "missing" (the run's state is gone)."""


def stranded_locks(redis: Redis) -> list[StrandedLock]:
    runs = RunStore(redis)
    prefix = keys.cluster_lock("")
    found = []
    for key in redis.scan_iter(match=keys.cluster_lock("*"), count=500):
        cluster = key.decode()[len(prefix) :]
        owner = redis.get(key)
        if owner is None:
            continue
        run = runs.load(owner.decode())
        if run is None:
            found.append(StrandedLock(cluster, owner.decode(), "missing"))
        elif run.finished:
            found.append(StrandedLock(cluster, run.id, f"finished: {run.status}"))
    return sorted(found, key=lambda lock: lock.cluster)


def unheld_runs(redis: Redis) -> list[str]:
    """Running runs with no lease and nothing queued: their worker stopped, and the reaper has not
    revived them yet (no worker runs, or it is backing off)."""
    return [
        run.id
        for run in RunStore(redis).active()
        if run.status == RUNNING
        and not redis.exists(keys.lease(run.id))
        and not redis.exists(keys.wake(run.id))
    ]
