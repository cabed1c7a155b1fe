"""The bot as a service: health, readiness and metrics endpoints, and Socket Mode end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from drbot.drills.common import started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage
from workers.timeline import Timeline

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


def test_notes_are_redacted_in_slack_and_the_timeline(stage: Stage) -> None:
    token = "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx"
    status, body = stage.slack.slash("U0BOB", CHANNEL, f"note restored from the runbook, token {token}")
    assert status == 200 and token not in body and "restored from the runbook" in json.loads(body)["text"]
    entries = Timeline(stage.redis()).entries(CHANNEL)
    assert entries[-1].who == "U0BOB" and token not in str(entries[-1].text)


def test_the_channel_can_switch_to_chinese(stage: Stage) -> None:
    try:
        _, body = stage.slack.slash("U0ALICE", CHANNEL, "language zh-CN")
        assert "zh-CN" in json.loads(body)["text"]
        _, body = stage.slack.slash("U0ALICE", CHANNEL, "help")
        assert "运行手册" in json.loads(body)["text"]
        _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup no-such-cluster")
        assert "用法" in json.loads(body)["text"] or "unknown cluster" in json.loads(body)["text"]
    finally:
        stage.slack.slash("U0ALICE", CHANNEL, "language en")


def test_timeline_export_writes_markdown(stage: Stage, tmp_path: Path) -> None:
    stage.slack.slash("U0ALICE", CHANNEL, "note drill started")
    out = tmp_path / "timeline.md"
    result = subprocess.run(
        [sys.executable, "-m", "drbot.cli", "timeline", "export", CHANNEL, "-o", str(out)],
        env=stage.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith(f"# Incident timeline: {CHANNEL}") and "| U0ALICE | drill started |" in text
