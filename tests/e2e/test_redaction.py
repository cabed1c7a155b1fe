"""Secrets never leave drbot, end to end.

Every canary (tests/redaction_canaries.py, plus the secrets drbot itself holds) is fed through the paths
a secret really takes into drbot:

- command output: cluster-backup.sh on a twin host fails, printing a file of canaries (as a broken
  script dumping its configuration does), and `/dr backup` shows what it printed in the run's thread;
- an API error: the cluster's API sits behind a front that refuses every request and echoes the
  credentials it was sent, so the backup's "cluster version unknown" carries the token, nested;
- a `/dr note` holding every canary;
- an exception: a kubeconfig whose token file ends with a newline makes http.client raise
  `ValueError: Invalid header value b'Bearer <token>\\n'`, and the step crashes with it.

Then nothing the Slack simulator received, nothing in the timeline (the Redis stream and `drbot timeline
export`), no `/dr timeline` answer and no line of the bot's or the worker's log may hold a canary.
drbot runs here with a password in REDIS_URL and AWS credentials in its environment, on a Redis of the
test's own, against the shared twin's hosts.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from drbot.drills.common import ssh, started_run, wait_for_run_end
from drbot.stage import APP_TOKEN, BOT_TOKEN, CHANNEL, SIGNING_SECRET, Stage
from procedures.clusters import Host, load_clusters
from procedures.i18n import t
from tests.redaction_canaries import CANARIES, Canary
from tests.redis_server import redis_server
from workers import keys
from workers.redact import redact

BACKUP_SCRIPT = "/usr/local/bin/cluster-backup.sh"
SAVED_SCRIPT = "/root/cluster-backup.sh.orig"
CANARY_FILE = "/home/core/drbot-canaries.txt"
FAILING_SCRIPT = f"#!/bin/sh\ncat {CANARY_FILE} >&2\nexit 1\n"
SHOWN_LINES = 15
"""The backup shows the last 15 lines the script printed (procedures/backup.py), so the canaries go
through in portions that fit."""
API_TOKEN = "sha256~ApiFrontTokenCanary0123456789abcdef"
NEWLINE_TOKEN = "sha256~NewlineTokenCanary0123456789abcdef"
READY_TIMEOUT = 120.0
"""For a drbot process to start: it imports the kubernetes client and Bolt, slow on a busy machine."""
AWS_SECRET = "AwsSecretByValueCanary/" + secrets.token_hex(8)
AWS_SESSION = "AwsSessionByValueCanary" + secrets.token_hex(8)


class ApiFront(BaseHTTPRequestHandler):
    """An authenticating proxy in front of the API that refuses every request and, as some do, echoes
    the credentials it refused in its error."""

    def do_GET(self) -> None:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"forbidden: {self.command} {self.path}: "
            f"Authorization: {self.headers.get('Authorization', '')}",
            "reason": "Forbidden",
            "code": 403,
        }
        body = json.dumps(status).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the test's output is not its access log
        pass


@dataclass
class Secured:
    stage: Stage
    kubeconfig: Path
    api: str
    own_secrets: Canary
    host: Host


def kubeconfig(server: str, user: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "twin", "cluster": {"server": server}}],
            "users": [{"name": "ops", "user": user}],
            "contexts": [{"name": "ops", "context": {"cluster": "twin", "user": "ops"}}],
            "current-context": "ops",
        }
    )


@pytest.fixture
def secured(stage: Stage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Secured]:
    """drbot on the shared twin's hosts, holding every kind of secret it can hold."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION)
    password = "RedisPwCanary" + secrets.token_hex(8)
    api = ThreadingHTTPServer(("127.0.0.1", 0), ApiFront)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    directory = tmp_path / "stage"
    directory.mkdir()
    config = yaml.safe_load(stage.config.read_text())
    config["clusters"][0]["kubeconfig"] = str(directory / "kubeconfig")
    (directory / "clusters.yaml").write_text(yaml.safe_dump(config))
    server = f"http://127.0.0.1:{api.server_port}"
    (directory / "kubeconfig").write_text(kubeconfig(server, {"token": API_TOKEN}))
    own = Canary(
        "the secrets drbot holds, by value",
        f"debug: signed with {SIGNING_SECRET}, app {APP_TOKEN}, bot {BOT_TOKEN}, redis {password}, "
        f"aws {AWS_SECRET} {AWS_SESSION}",
        (SIGNING_SECRET, APP_TOKEN, BOT_TOKEN, password, AWS_SECRET, AWS_SESSION),
    )
    try:
        with redis_server(tmp_path / "redis", "--maxmemory-policy", "noeviction") as redis:
            redis.client.config_set("requirepass", password)
            url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
            with Stage(directory, url, start_twin=False, ready_timeout=READY_TIMEOUT) as secure:
                host = load_clusters(secure.config).get("twin").hosts[0]
                yield Secured(secure, directory / "kubeconfig", server, own, host)
    finally:
        api.shutdown()
        api.server_close()


def portions(canaries: list[Canary]) -> list[list[Canary]]:
    """The canaries in groups of whole canaries, each group at most SHOWN_LINES lines."""
    groups: list[list[Canary]] = [[]]
    for canary in canaries:
        lines = canary.text.count("\n") + 1
        if sum(c.text.count("\n") + 1 for c in groups[-1]) + lines > SHOWN_LINES:
            groups.append([])
        groups[-1].append(canary)
    return groups


def on_host(secured: Secured, command: str) -> str:
    return ssh(secured.stage, command, secured.host)


def backup_printing(secured: Secured, portion: list[Canary]) -> str:
    """Run `/dr backup` while the host's cluster-backup.sh fails printing `portion`; the run's id."""
    text = "\n".join(c.text for c in portion) + "\n"
    encoded = base64.b64encode(text.encode()).decode()
    on_host(secured, f"echo {encoded} | base64 -d | sudo tee {CANARY_FILE} >/dev/null")
    stage = secured.stage
    status, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup twin host={secured.host.name}")
    assert status == 200, body
    run_id = started_run(body)
    assert "Failed" in wait_for_run_end(stage, run_id)
    return run_id


def thread_of(stage: Stage, run_id: str) -> str:
    """The run's thread, files included, once its last message is there: what people read."""
    done = (t("thread.run_succeeded", run=run_id), t("thread.run_failed", run=run_id))
    status = next(m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text)

    def replies() -> str:
        texts = [text for m in stage.slack.thread(CHANNEL, status.ts) for text in texts_of(m.text, m.blocks)]
        texts += [f.text for f in stage.slack.files if f.thread_ts == status.ts]
        return html.unescape("\n".join(texts))

    stage.wait_for(lambda: any(d in replies() for d in done), 30, f"the end of run {run_id}'s thread")
    return replies()


def texts_of(text: str, blocks: list[dict[str, Any]] | None) -> list[str]:
    """A message's text and the texts of its blocks."""
    found = [text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks or [])
    return found


def what_slack_received(stage: Stage) -> str:
    """Every call drbot made to the Slack simulator, and what it stored: messages with their earlier
    versions, ephemerals, uploaded files (what people sent, slash commands and clicks, left out)."""
    slack = stage.slack
    parts = [
        json.dumps(c.args, default=str)
        for c in slack.calls()
        if c.method not in ("slash_command", "block_actions")
    ]
    for message in slack.all_messages(CHANNEL):
        parts += [message.text, json.dumps(message.blocks)]
        parts += [f"{edit.text} {json.dumps(edit.blocks)}" for edit in message.edits]
    for ephemeral in slack.ephemerals(CHANNEL):
        parts += [ephemeral.text, json.dumps(ephemeral.blocks)]
        parts += [f"{edit.text} {json.dumps(edit.blocks)}" for edit in ephemeral.edits]
    parts += [file.text for file in slack.files]
    return "\n".join(parts)


def test_no_canary_leaves_drbot(secured: Secured) -> None:
    stage = secured.stage
    canaries = [*CANARIES, secured.own_secrets]
    answers: list[str] = []

    # A note with every canary; while the timeline is short, /dr timeline answers inline.
    status, body = stage.slack.slash("U0BOB", CHANNEL, "note " + "\n".join(c.text for c in canaries))
    assert status == 200 and "MYSQL_ROOT_PASSWORD=[REDACTED]" in body
    status, inline = stage.slack.slash("U0BOB", CHANNEL, "timeline")
    assert status == 200 and "MYSQL_ROOT_PASSWORD=[REDACTED]" in inline
    answers += [body, inline]

    # Command output and the API error, portion by portion.
    on_host(secured, f"sudo cp -p {BACKUP_SCRIPT} {SAVED_SCRIPT}")
    try:
        failing = base64.b64encode(FAILING_SCRIPT.encode()).decode()
        on_host(secured, f"echo {failing} | base64 -d | sudo tee {BACKUP_SCRIPT} >/dev/null")
        for portion in portions(canaries):
            thread = thread_of(stage, backup_printing(secured, portion))
            shown = [c for c in portion if c is not secured.own_secrets]
            assert redact("\n".join(c.text for c in shown)) in thread, "what the script printed is shown"
            assert "answered 403 Forbidden" in thread and "Authorization: Bearer [REDACTED" in thread
    finally:
        on_host(secured, f"sudo mv {SAVED_SCRIPT} {BACKUP_SCRIPT}; sudo rm -f {CANARY_FILE}")

    # The exception: a token file that ends with a newline, as `echo $TOKEN > token` writes it.
    token_file = secured.kubeconfig.with_name("token")
    token_file.write_text(NEWLINE_TOKEN + "\n")
    secured.kubeconfig.write_text(kubeconfig(secured.api, {"tokenFile": str(token_file)}))
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
    run_id = started_run(body)
    assert "Failed" in wait_for_run_end(stage, run_id)
    assert "ValueError: Invalid header value b'Bearer [REDACTED" in thread_of(stage, run_id)

    # A long timeline is uploaded as a file; the export writes it as Markdown.
    status, body = stage.slack.slash("U0BOB", CHANNEL, "timeline")
    assert status == 200 and "attached as a file" in body
    answers.append(body)
    stage.wait_for(lambda: any(f.filename.startswith("timeline-") for f in stage.slack.files), 30, "the file")
    export = subprocess.run(
        [sys.executable, "-m", "drbot.cli", "timeline", "export", CHANNEL],
        env=stage.env(),
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
    )
    assert export.returncode == 0 and "MYSQL_ROOT_PASSWORD=[REDACTED]" in export.stdout, export.stderr
    stream = stage.redis().xrange(keys.timeline(CHANNEL))
    worker_log = "".join(p.read_text() for p in stage.logs.glob("worker-*.log"))
    assert "ValueError: Invalid header value b'Bearer [REDACTED" in worker_log, "the crash is logged"

    places = {
        "Slack": what_slack_received(stage),
        "/dr answers": "\n".join(answers),
        "the timeline stream": repr(stream),
        "drbot timeline export": export.stdout + export.stderr,
        "the bot's log": (stage.logs / "bot.log").read_text(),
        "the worker's log": worker_log,
    }
    every_secret = [s for c in canaries for s in c.secrets] + [API_TOKEN[7:], NEWLINE_TOKEN[7:]]
    leaks = [
        f"{secret!r} in {place}"
        for secret in every_secret
        for place, text in places.items()
        if secret in text
    ]
    assert not leaks, leaks
