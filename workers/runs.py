"""Run state in Redis: one hash per run, one lock per cluster.

A run is created by the bot and advanced by workers; neither keeps it in memory. The cluster lock
holds the id of the run that owns the cluster and has no TTL: a crashed worker must not let a
second restore start on the same cluster.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis import Redis

from workers import keys

RUNNING = "running"
WAITING = "waiting"
"""Paused at an approval, a choice or an unknown-outcome decision; no worker is held."""
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
FINISHED = (SUCCEEDED, FAILED, ABORTED)


@dataclass
class Run:
    id: str
    procedure: str
    cluster: str
    channel: str
    requester: str
    language: str = "en"
    params: dict[str, str] = field(default_factory=dict)
    status: str = RUNNING
    step_index: int = 0
    vars: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    finished_at: float = 0.0
    abort_requested_by: str = ""
    gate: str = ""
    """The token of the open gate while the run is WAITING."""
    progress: dict[str, Any] = field(default_factory=dict)
    """What the current step is doing or waiting for (a catalog message as JSON)."""
    result: dict[str, Any] = field(default_factory=dict)
    """How the run ended: the failed step and its summary, or who aborted it."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def elapsed(self, now: float | None = None) -> float:
        end = self.finished_at or (now if now is not None else time.time())
        return max(0.0, end - self.created_at)


class ClusterBusy(Exception):
    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


_JSON_FIELDS = ("params", "vars", "result", "progress")


def new_run_id() -> str:
    return "r" + secrets.token_hex(4)


class RunStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def create(self, run: Run) -> Run:
        """Take the cluster lock and store the run; raises ClusterBusy if another run owns the cluster."""
        run.created_at = run.created_at or time.time()
        if not self.redis.set(keys.cluster_lock(run.cluster), run.id, nx=True):
            owner = self.redis.get(keys.cluster_lock(run.cluster))
            raise ClusterBusy(owner.decode() if owner else "?")
        pipe = self.redis.pipeline()
        pipe.hset(keys.run(run.id), mapping=_encode(run))
        pipe.sadd(keys.active_runs(), run.id)
        pipe.lpush(keys.cluster_runs(run.cluster), run.id)
        pipe.execute()
        return run

    def load(self, run_id: str) -> Run | None:
        raw = self.redis.hgetall(keys.run(run_id))
        return _decode(raw) if raw else None

    def save(self, run: Run, *fields: str) -> None:
        """Write the given fields (all when none are named)."""
        encoded = _encode(run)
        if fields:
            encoded = {k: encoded[k] for k in fields}
        self.redis.hset(keys.run(run.id), mapping=encoded)

    def finish(self, run: Run, status: str, result: dict[str, Any] | None = None) -> None:
        run.status = status
        run.finished_at = time.time()
        run.result = result or run.result
        pipe = self.redis.pipeline()
        pipe.hset(keys.run(run.id), mapping=_encode(run))
        pipe.srem(keys.active_runs(), run.id)
        pipe.execute()
        self.release_cluster(run)

    def reopen(self, run: Run) -> bool:
        """Take the cluster lock again for a failed run and mark it running; False if the cluster is busy."""
        if not self.redis.set(keys.cluster_lock(run.cluster), run.id, nx=True):
            return False
        run.status, run.finished_at, run.result = RUNNING, 0.0, {}
        pipe = self.redis.pipeline()
        pipe.hset(keys.run(run.id), mapping=_encode(run))
        pipe.sadd(keys.active_runs(), run.id)
        pipe.execute()
        return True

    def release_cluster(self, run: Run) -> None:
        """Release the cluster lock only if this run still holds it."""
        lock = keys.cluster_lock(run.cluster)
        with self.redis.pipeline() as pipe:
            pipe.watch(lock)
            if pipe.get(lock) == run.id.encode():
                pipe.multi()
                pipe.delete(lock)
                pipe.execute()

    def active(self) -> list[Run]:
        ids = sorted(m.decode() for m in self.redis.smembers(keys.active_runs()))
        return [run for run in (self.load(i) for i in ids) if run]

    def owner_of(self, cluster: str) -> str | None:
        owner = self.redis.get(keys.cluster_lock(cluster))
        return owner.decode() if owner else None

    def recent(self, cluster: str, limit: int = 20) -> list[Run]:
        ids = [i.decode() for i in self.redis.lrange(keys.cluster_runs(cluster), 0, limit - 1)]
        return [run for run in (self.load(i) for i in ids) if run]


def _encode(run: Run) -> dict[str, str]:
    data = asdict(run)
    return {k: json.dumps(v) if k in _JSON_FIELDS else str(v) for k, v in data.items()}


def _decode(raw: dict[bytes, bytes]) -> Run:
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return Run(
        id=data["id"],
        procedure=data["procedure"],
        cluster=data["cluster"],
        channel=data["channel"],
        requester=data["requester"],
        language=data.get("language", "en"),
        params=json.loads(data.get("params", "{}")),
        status=data.get("status", RUNNING),
        step_index=int(data.get("step_index", 0)),
        vars=json.loads(data.get("vars", "{}")),
        created_at=float(data.get("created_at", 0)),
        finished_at=float(data.get("finished_at", 0)),
        abort_requested_by=data.get("abort_requested_by", ""),
        gate=data.get("gate", ""),
        progress=json.loads(data.get("progress", "{}")),
        result=json.loads(data.get("result", "{}")),
    )
