"""What every drill scenario uses: the report, and reading results the way an operator would."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from drbot.stage import CHANNEL, Stage, StageError
from procedures.clusters import Host, load_clusters
from procedures.i18n import t
from procedures.registry import PROCEDURES
from workers.gates import load_gate
from workers.runs import RunStore

GATE_TIMEOUT = 120.0
APPROVER = "U0BOB"
"""The second engineer: an approver in the twin's clusters file who did not start the runs."""
RUN_ID = re.compile(r"run `(r[0-9a-f]+)`")


@dataclass
class Report:
    phases: list[tuple[str, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"▶ {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((name, time.monotonic() - started))

    def check(self, ok: bool, what: str) -> None:
        print(f"  {'✔' if ok else '✘'} {what}", flush=True)
        if not ok:
            self.failures.append(what)


def started_run(body: str) -> str:
    """The run id in drbot's answer to a command that started a run."""
    found = RUN_ID.search(body)
    if not found:
        raise StageError(f"drbot did not start a run: {body}")
    return found.group(1)


def wait_for_run_end(stage: Stage, run_id: str, timeout: float | None = None) -> str:
    """The text of the run's status message once the run has ended (within the stage's run timeout
    unless `timeout` says otherwise)."""
    ended = [t(f"status.{s}") for s in ("succeeded", "failed", "aborted")]

    def status_text() -> str:
        for message in stage.slack.messages(CHANNEL):
            if f"(run {run_id})" in message.text and any(word in message.text for word in ended):
                return message.text
        return ""

    return stage.wait_for(status_text, timeout or stage.run_timeout, f"run {run_id} to end")


def ssh(stage: Stage, command: str, host: Host | None = None) -> str:
    """Run a command on a twin host with the OpenSSH client, as an operator would."""
    target = host or load_clusters(stage.config).get(load_clusters(stage.config).names()[0]).hosts[0]
    result = subprocess.run(
        [
            "ssh",
            "-i",
            target.key,
            "-o",
            f"UserKnownHostsFile={target.known_hosts}",
            "-o",
            "BatchMode=yes",
            "-p",
            str(target.port),
            f"{target.user}@{target.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr


def gate_message_ts(stage: Stage, token: str) -> str:
    """The Slack message that carries the buttons of the gate `token`."""
    for message in stage.slack.all_messages(CHANNEL):
        if token in json.dumps(message.blocks or []):
            return message.ts
    return ""


def answer_gate(stage: Stage, run_id: str, step: str, user: str, action: str = "approve") -> None:
    """Wait until the run waits at `step`, then click its approve (or reject) button as `user`."""
    runs, redis = RunStore(stage.redis()), stage.redis()

    def open_gate() -> str:
        run = runs.load(run_id)
        if run is None:
            raise StageError(f"run {run_id} is gone")
        if run.finished:
            raise StageError(f"run {run_id} ended before the gate {step}: {run.status} {run.result}")
        gate = load_gate(redis, run.gate) if run.gate else None
        return gate.token if gate is not None and gate.step == step else ""

    token = stage.wait_for(open_gate, GATE_TIMEOUT, f"run {run_id} to wait at {step}", interval=0.3)
    ts = stage.wait_for(lambda: gate_message_ts(stage, token), 20, f"the {step} buttons in Slack")
    status, _ = stage.slack.click(user, ts, f"gate:{action}", f"{token}|{action}")
    if status != 200:
        raise StageError(f"clicking {action} on {step} answered HTTP {status}")


def buttons(stage: Stage, run_id: str) -> Iterator[tuple[Any, str, str]]:
    """(message, action_id, value) of every button bob would click for this run: the gates on its
    status message and in its thread, and the CSR panel."""
    status = next((m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text), None)
    for message in stage.slack.all_messages(CHANNEL):
        ours = status is not None and status.ts in (message.ts, message.thread_ts)
        for block in message.blocks or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                action = element.get("action_id")
                if action == "csr:approve_all" or (action == "gate:approve" and ours):
                    yield message, action, element.get("value", "")


def approve_until_done(
    stage: Stage,
    run_id: str,
    timeout: float | None = None,
    before_approving: Mapping[str, Callable[[], None]] | None = None,
) -> int:
    """bob clicks each approval and CSR button once, until the run ends; returns how many clicks.

    `before_approving` maps a step id to what a person does before approving that step's gate (e.g.
    re-creating machines by hand on a user-provisioned cluster)."""
    ended = [t(f"status.{s}") for s in ("succeeded", "failed", "aborted")]
    runs = RunStore(stage.redis())
    todo = dict(before_approving or {})
    clicked: set[tuple[str, str]] = set()
    timeout = timeout or stage.run_timeout
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = next((m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text), None)
        if status is not None and any(word in status.text for word in ended):
            return len(clicked)
        for message, action, value in list(buttons(stage, run_id)):
            if (message.ts, value) in clicked:
                continue
            run = runs.load(run_id)
            step = PROCEDURES[run.procedure].steps[run.step_index].id if run else ""
            if action == "gate:approve" and step in todo:
                print(f"  a person does what step {step} asks", flush=True)
                todo.pop(step)()
            clicked.add((message.ts, value))
            print(f"  bob clicks {action} ({step})", flush=True)
            stage.slack.click(APPROVER, message, action, value)
        time.sleep(0.5)
    raise StageError(f"the run {run_id} did not end within {timeout:.0f} s")
