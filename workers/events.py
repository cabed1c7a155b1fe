"""What the engine reports for Slack: a Redis stream the bot's notifier turns into messages.

The stream carries only ids and catalog messages; the bot renders the current run state from Redis
when it sends, so Slack stays a view of Redis.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis

from workers import keys

MAX_EVENTS = 50_000

RUN_STARTED = "run_started"
STEP_STARTED = "step_started"
STEP_FINISHED = "step_finished"
STEP_SKIPPED = "step_skipped"
PROGRESS = "progress"
GATE_OPENED = "gate_opened"
GATE_CLOSED = "gate_closed"
RUN_FINISHED = "run_finished"
RUN_RETRIED = "run_retried"
PANEL = "panel"
NOTE = "note"


def emit(redis: Redis, event: str, run_id: str, **data: Any) -> None:
    redis.xadd(
        keys.events(),
        {"event": event, "run": run_id, "data": json.dumps(data)},
        maxlen=MAX_EVENTS,
        approximate=True,
    )


def decode(fields: dict[bytes, bytes]) -> tuple[str, str, dict[str, Any]]:
    return fields[b"event"].decode(), fields[b"run"].decode(), json.loads(fields[b"data"])
