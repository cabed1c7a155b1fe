"""What every drill scenario uses: the report, and reading results the way an operator would."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from drbot.stage import CHANNEL, Stage, StageError
from procedures.clusters import Host, load_clusters
from procedures.i18n import t

RUN_TIMEOUT = 300
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


def wait_for_run_end(stage: Stage, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    """The text of the run's status message once the run has ended."""
    ended = [t(f"status.{s}") for s in ("succeeded", "failed", "aborted")]

    def status_text() -> str:
        for message in stage.slack.messages(CHANNEL):
            if f"(run {run_id})" in message.text and any(word in message.text for word in ended):
                return message.text
        return ""

    return stage.wait_for(status_text, timeout, f"run {run_id} to end")


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
