"""Run state in Redis: one hash per run, one lock per cluster.

A run is created by the bot and advanced by workers; neither keeps it in memory. The cluster lock
holds the id of the run that owns the cluster and has no TTL: a crashed worker must not let a
second restore start on the same cluster. Creating a run takes the lock and finishing it releases
the lock in the same step (workers/transitions.py), so a lock never outlives its run.

A finished run's keys (state, journal) expire after DRBOT_RETENTION_DAYS (default 30); so does an
incident's timeline after its last entry (workers/timeline.py).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis import Redis

from workers import keys, transitions

RUNNING = "running"
WAITING = "waiting"
"""Paused at an approval, a choice or an unknown-outcome decision; no worker is held."""
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
FINISHED = (SUCCEEDED, FAILED, ABORTED)

RETENTION = int(float(os.environ.get("DRBOT_RETENTION_DAYS", "30")) * 86400)
"""Seconds a finished run's keys and an idle timeline are kept."""
NO_LEASE = ("", "")
"""For callers that hold no lease (the bot, an operator's command): see workers/fence.py."""


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
    revivals: int = 0
    """Times the reaper queued the run again since a step last finished (workers/reaper.py)."""
    revive_after: float = 0.0
    last_error: str = ""
    """Why the last attempt to advance the run stopped outside a step (a bug, a lost Redis)."""

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
    """128 random bits: ids are never reused, so a run never inherits another's journal or gates."""
    return "r" + secrets.token_hex(16)


class RunStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def create(self, run: Run) -> Run:
        """Take the cluster lock and store the run in one step; raises ClusterBusy if another run owns
        the cluster. A taken id (astronomically unlikely) gets a fresh one."""
        run.created_at = run.created_at or time.time()
        for _ in range(3):
            answer, owner = transitions.create(self.redis, run.id, run.cluster, _encode(run))
            if answer == "busy":
                raise ClusterBusy(owner)
            if answer == "ok":
                return run
            run.id = new_run_id()
        raise RuntimeError("three run ids in a row were taken; is the random generator broken?")

    def load(self, run_id: str) -> Run | None:
        raw = self.redis.hgetall(keys.run(run_id))
        return _decode(raw) if raw else None

    def save(self, run: Run, *names: str) -> None:
        """Write the given fields (all when none are named)."""
        self.redis.hset(keys.run(run.id), mapping=fields(run, *names))

    def finish(
        self, run: Run, status: str, result: dict[str, Any] | None = None, lease: tuple[str, str] = NO_LEASE
    ) -> None:
        """End the run and release its cluster lock in one step (fenced by `lease` for a worker)."""
        run.status = status
        run.finished_at = time.time()
        run.result = result or run.result
        run.progress = {}
        transitions.finish(self.redis, lease, run.id, run.cluster, _encode(run), RETENTION)

    def reopen(self, run: Run) -> str:
        """Take the cluster lock again for a failed run and mark it running: "ok", "busy" or "not_failed"."""
        answer, _ = transitions.reopen(self.redis, run.id, run.cluster)
        return answer

    def active(self) -> list[Run]:
        ids = sorted(m.decode() for m in self.redis.smembers(keys.active_runs()))
        return [run for run in (self.load(i) for i in ids) if run]

    def owner_of(self, cluster: str) -> str | None:
        owner = self.redis.get(keys.cluster_lock(cluster))
        return owner.decode() if owner else None

    def recent(self, cluster: str, limit: int = 20) -> list[Run]:
        ids = [i.decode() for i in self.redis.lrange(keys.cluster_runs(cluster), 0, limit - 1)]
        return [run for run in (self.load(i) for i in ids) if run]


def fields(run: Run, *names: str) -> dict[str, str]:
    """The run's fields as stored in its hash; only `names` when given."""
    encoded = _encode(run)
    return {k: encoded[k] for k in names} if names else encoded


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
        revivals=int(data.get("revivals", 0)),
        revive_after=float(data.get("revive_after", 0)),
        last_error=data.get("last_error", ""),
    )
