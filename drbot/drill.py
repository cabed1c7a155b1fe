"""`drbot drill SCENARIO`: a disaster-recovery drill on a local twin, driven like a person would.

A simulated engineer types commands in the Slack simulator, another clicks the approvals; drbot
serves and works in real processes; the drill then checks the result on the twin's hosts, prints
the channel transcript, the timeline and the time each phase took, and exits non-zero if anything
did not work.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from drbot.stage import CHANNEL, Stage, StageError
from procedures.clusters import Host, load_clusters
from procedures.i18n import t
from workers.timeline import Timeline

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
"""The drill empties this database before it starts: keep it apart from a real drbot's."""
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


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    drill = commands.add_parser("drill", help="run a disaster-recovery drill on a local twin")
    drill.add_argument("scenario", choices=sorted(SCENARIOS))
    drill.add_argument("--dir", help="the twin's directory (default: a new temporary one)")
    drill.add_argument("--keep", action="store_true", help="leave the twin running and say how to reach it")
    drill.add_argument(
        "--redis-url",
        default=os.environ.get("DRBOT_DRILL_REDIS_URL", DEFAULT_REDIS),
        help=f"Redis database the drill may empty (default {DEFAULT_REDIS})",
    )
    drill.set_defaults(func=run_drill)


def run_drill(args: argparse.Namespace) -> int:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="drbot-drill-"))
    report = Report()
    stage = Stage(directory, args.redis_url, keep_twin=args.keep)
    with report.phase("twin up, drbot serve and drbot worker start"):
        try:
            stage.up()
        except Exception as error:
            stage.down()
            print(f"DRILL FAILED: the stage did not come up: {error}")
            return 1
    try:
        SCENARIOS[args.scenario](stage, report)
    except Exception as error:
        report.failures.append(f"the drill stopped: {error}")
    finally:
        print_outcome(stage, report)
        with report.phase("shut down"):
            stage.down()
    print_phases(report)
    if args.keep:
        print_how_to_reach(directory)
    print("DRILL FAILED: " + "; ".join(report.failures) if report.failures else "DRILL PASSED")
    return 1 if report.failures else 0


def backup_drill(stage: Stage, report: Report) -> None:
    cluster = load_clusters(stage.config).names()[0]
    with report.phase(f"alice types /dr backup {cluster}"):
        status, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup {cluster}")
        report.check(status == 200, f"/dr backup acknowledged (HTTP {status})")
        final = wait_for_run_end(stage, started_run(body))
        report.check(t("status.succeeded") in final, "the status message says the backup succeeded")
    with report.phase("check the backup on the host over SSH"):
        listing = ssh(stage, "sudo ls -l /home/core/assets/backup")
        report.check(
            "snapshot_" in listing and "static_kuberesources_" in listing,
            "snapshot_<ts>.db and static_kuberesources_<ts>.tar.gz are on the host",
        )


SCENARIOS: dict[str, Callable[[Stage, Report], None]] = {"backup": backup_drill}


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


def print_outcome(stage: Stage, report: Report) -> None:
    print("\n=== Channel transcript ===")
    print(stage.slack.transcript(CHANNEL))
    print("\n=== Incident timeline ===")
    print(Timeline(stage.redis()).export_markdown(CHANNEL))


def print_phases(report: Report) -> None:
    print("=== Phases ===")
    for name, seconds in report.phases:
        print(f"{seconds:8.2f} s  {name}")


def print_how_to_reach(directory: Path) -> None:
    clusters = load_clusters(directory / "clusters.yaml")
    cluster = clusters.get(clusters.names()[0])
    host = cluster.hosts[0]
    print(f"\nThe twin keeps running in {directory}.")
    print(f"  clusters file: {directory / 'clusters.yaml'}")
    if cluster.kubeconfig:
        print(f"  kubeconfig:    {cluster.kubeconfig}")
    print(
        f"  ssh:           ssh -i {host.key} -o UserKnownHostsFile={host.known_hosts} -p {host.port} "
        f"{host.user}@{host.address}"
    )
    print(f"  stop it:       drbot twin down --dir {directory}")
