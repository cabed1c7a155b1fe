"""The step journal: an append-only list per run, written before and after every side effect.

On resume the journal, not the run's step index, says where a step stands: "finished" means do not
run it again; "started" without "finished" means its outcome is unknown.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis

from workers import keys

STARTED = "started"
FINISHED = "finished"
SKIPPED = "skipped"
FAILED = "failed"
HOST_RESULT = "host_result"
DECISION = "decision"


def entry(event: str, step: str, **data: Any) -> dict[str, Any]:
    """One journal entry (also built by workers/control.py, which journals decisions in a script)."""
    return {"at": time.time(), "event": event, "step": step, **data}


class Journal:
    def __init__(self, redis: Redis, run_id: str) -> None:
        self.redis = redis
        self.key = keys.journal(run_id)

    def append(self, event: str, step: str, **data: Any) -> dict[str, Any]:
        item = entry(event, step, **data)
        self.redis.rpush(self.key, json.dumps(item))
        return item

    def entries(self, step: str | None = None) -> list[dict[str, Any]]:
        items = [json.loads(raw) for raw in self.redis.lrange(self.key, 0, -1)]
        return [e for e in items if step is None or e["step"] == step]

    def state(self, step: str) -> tuple[str | None, int]:
        """The step's last lifecycle event and its attempts so far.

        started, finished, skipped, failed (it finished without success: a retry runs it again) or None.
        """
        last, attempts = None, 0
        for entry in self.entries(step):
            if entry["event"] == STARTED:
                attempts += 1
                last = STARTED
            elif entry["event"] == FINISHED:
                last = FINISHED if entry.get("ok", True) else FAILED
            elif entry["event"] == SKIPPED:
                last = SKIPPED
        return last, attempts

    def decision(self, step: str, attempt: int) -> dict[str, Any] | None:
        """A human's decision about an interrupted attempt of a step (rerun or skip), if any."""
        for entry in reversed(self.entries(step)):
            if entry["event"] == DECISION and entry.get("attempt") == attempt:
                return entry
        return None
