"""The bot as a service: health, readiness and metrics endpoints, and Socket Mode end to end."""

from __future__ import annotations

import json
import urllib.request

from drbot.drills.common import started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage

SOCKET_DB = "redis://127.0.0.1:6379/7"


def get(stage: Stage, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{stage.port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


def test_health_readiness_and_metrics(stage: Stage) -> None:
    assert get(stage, "/healthz") == (200, "ok")
    status, body = get(stage, "/readyz")
    assert status == 200 and json.loads(body) == {"ready": True, "clusters": ["twin"]}
    status, body = get(stage, "/metrics")
    assert status == 200
    assert "drbot_active_runs" in body and "drbot_outbox_pending" in body


def test_socket_mode_takes_commands_over_the_websocket(stage: Stage) -> None:
    with Stage(stage.directory, SOCKET_DB, start_twin=False, socket_mode=True) as socket_stage:
        status, body = socket_stage.slack.slash("U0ALICE", CHANNEL, "help")
        assert status == 200 and "/dr backup CLUSTER" in body
        status, body = socket_stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
        assert status == 200
        assert "Succeeded" in wait_for_run_end(socket_stage, started_run(body))
