"""Hostile values on one control-plane host (issue 11), end to end on the shared twin.

An attacker with root on one host plants a value the restore reads from that host: a backup file name,
ETCD_NAME in restore-etcd-pod/pod.yaml, a peer IP in etcd.env, the output of uuidgen. Each is planted
over SSH, as that attacker would, and `/dr restore-manual` (and, for the backup names, `/dr restore`)
must refuse before the start approval with a message naming the host, the file, the value and the
pattern, and nothing may have been written on any host. Every planted file is put back after its case.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from drbot.drills.common import ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage
from procedures.clusters import Host, load_clusters
from workers.gates import load_gate
from workers.journal import Journal
from workers.runs import Run, RunStore

BACKUP_DIR = "/home/core/assets/backup"
ETCD_CONFIGMAPS = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps"
RESTORE_POD_YAML = f"{ETCD_CONFIGMAPS}/restore-etcd-pod/pod.yaml"
ETCD_ENV = f"{ETCD_CONFIGMAPS}/etcd-scripts/etcd.env"
PWNED = ("/tmp/PWNED", "/root/PWNED", "/home/core/PWNED", "/var/lib/etcd/PWNED", "/PWNED")
"""Where a `touch PWNED` run by a host's shell or by the etcd image's bash would leave its file."""
SAVED = "/root/hostile-test-saved"
REPRODUCTION = "snapshot_2024-01-01_000000;touch${IFS}PWNED;.db"
"""The file name of the review's reproduction: older than the real backup, so not the one restored."""
NEWEST = "2099-01-01_000000;touch${IFS}PWNED;"
"""A time stamp that sorts after the real backup, so cluster-restore.sh and drbot would both pick it."""
HOSTILE_UUID = ";touch /tmp/PWNED;#".ljust(36, "0")
"""As long as a uuid (the only check the review found), with a `;` to end the `rm -rf` it lands in."""


def hosts(stage: Stage) -> tuple[Host, ...]:
    return load_clusters(stage.config).get("twin").hosts


def root(stage: Stage, host: Host, command: str) -> str:
    """A command as root on a twin host: the attacker's, or the test's own look around."""
    return ssh(stage, f"sudo sh -c {shlex.quote(command)}", host)


def write(stage: Stage, host: Host, path: str, text: str) -> None:
    encoded = base64.b64encode(text.encode()).decode()
    root(stage, host, f"echo {encoded} | base64 -d > {shlex.quote(path)}")


@dataclass
class Planter:
    """Plants files on twin hosts and takes them all back, in reverse order, when the case ends."""

    stage: Stage
    undo: list[tuple[Host, str]]

    def copy(self, host: Host, source: str, target: str) -> None:
        root(self.stage, host, f"cp {shlex.quote(source)} {shlex.quote(target)}")
        self.undo.append((host, f"rm -f {shlex.quote(target)}"))

    def new_file(self, host: Host, path: str, text: str, mode: str = "644") -> None:
        write(self.stage, host, path, text)
        root(self.stage, host, f"chmod {mode} {shlex.quote(path)}")
        self.undo.append((host, f"rm -f {shlex.quote(path)}"))

    def edit(self, host: Host, path: str, old: str, new: str) -> None:
        text = root(self.stage, host, f"cat {shlex.quote(path)}")
        assert old in text, (host.name, path, old)
        saved = f"{SAVED}/{path.replace('/', '_')}"
        root(self.stage, host, f"mkdir -p {SAVED} && cp -p {shlex.quote(path)} {shlex.quote(saved)}")
        self.undo.append((host, f"mv -f {shlex.quote(saved)} {shlex.quote(path)}"))
        write(self.stage, host, path, text.replace(old, new))


@pytest.fixture(scope="module")
def backup_host(stage: Stage) -> Host:
    """The host that holds a fresh backup: the recovery host of every case."""
    host = hosts(stage)[0]
    _, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup twin host={host.name}")
    assert "Succeeded" in wait_for_run_end(stage, started_run(body))
    return host


@pytest.fixture
def planter(stage: Stage) -> Iterator[Planter]:
    planted = Planter(stage, [])
    try:
        yield planted
    finally:
        for host, command in reversed(planted.undo):
            root(stage, host, command)
        for host in hosts(stage):
            root(stage, host, f"rm -rf {SAVED} {' '.join(PWNED)}")


def newest(stage: Stage, host: Host, prefix: str, suffix: str) -> str:
    names = root(stage, host, f"cd {BACKUP_DIR} && ls -v {prefix}*{suffix}").split()
    return names[-1]


def plant_reproduction(stage: Stage, planter: Planter, recovery: Host) -> None:
    snapshot = newest(stage, recovery, "snapshot_", ".db")
    planter.copy(recovery, f"{BACKUP_DIR}/{snapshot}", f"{BACKUP_DIR}/{REPRODUCTION}")


def plant_newest_backup(stage: Stage, planter: Planter, recovery: Host) -> None:
    """Both files of a backup, so that the hostile pair is the newest complete backup in the directory."""
    snapshot = newest(stage, recovery, "snapshot_", ".db")
    resources = newest(stage, recovery, "static_kuberesources_", ".tar.gz")
    planter.copy(recovery, f"{BACKUP_DIR}/{snapshot}", f"{BACKUP_DIR}/snapshot_{NEWEST}.db")
    planter.copy(recovery, f"{BACKUP_DIR}/{resources}", f"{BACKUP_DIR}/static_kuberesources_{NEWEST}.tar.gz")


def plant_etcd_name(stage: Stage, planter: Planter, recovery: Host) -> None:
    host = hosts(stage)[1]
    planter.edit(host, RESTORE_POD_YAML, f'value: "{host.name}"', f'value: "{host.name}$(touch /tmp/PWNED)"')


def plant_peer_ip(stage: Stage, planter: Planter, recovery: Host) -> None:
    """A link-local IPv6 address whose zone is a command: Python's ipaddress accepts any zone text."""
    host = hosts(stage)[2]
    key = host.name.replace(".", "_").replace("-", "_")
    planter.edit(
        host, ETCD_ENV, f'NODE_{key}_IP="{host.address}"', f'NODE_{key}_IP="fe80::1%$(touch${{IFS}}PWNED)"'
    )


def plant_uuid(stage: Stage, planter: Planter, recovery: Host) -> None:
    """uuidgen replaced in /usr/local/bin (first in core's PATH) on the host where drbot runs it."""
    planter.new_file(recovery, "/usr/local/bin/uuidgen", f"#!/bin/sh\necho '{HOSTILE_UUID}'\n", mode="755")


@dataclass(frozen=True)
class Case:
    plant: Callable[[Stage, Planter, Host], None]
    host: int
    """The index of the host the value is planted on (0 is the recovery host)."""
    step: str
    """The step that must refuse: one that only reads."""
    shown: tuple[str, ...]
    """What the refusal must show besides the host: the file, the value (or its start) and the pattern."""


CASES = {
    "reproduction-snapshot-name": Case(
        plant_reproduction,
        0,
        "probe-hosts",
        (
            BACKUP_DIR,
            "snapshot_2024-01-01_000000;touch",
            "snapshot_YYYY-MM-DD_HHMMSS.db",
            "nothing was changed",
        ),
    ),
    "newest-backup-names": Case(
        plant_newest_backup,
        0,
        "probe-hosts",
        (
            BACKUP_DIR,
            "snapshot_2099-01-01_000000;touch",
            "snapshot_YYYY-MM-DD_HHMMSS.db",
            "nothing was changed",
        ),
    ),
    "etcd-name-in-pod-yaml": Case(
        plant_etcd_name,
        1,
        "read-etcd-parameters",
        (RESTORE_POD_YAML, "$(touch /tmp/PWNED)", "DNS-1123", "nothing was changed"),
    ),
    "peer-ip-in-etcd-env": Case(
        plant_peer_ip,
        2,
        "read-etcd-parameters",
        (ETCD_ENV, "fe80::1%$(touch", "IPv4 or IPv6 address", "nothing was changed"),
    ),
    "uuid-with-semicolon": Case(
        plant_uuid, 0, "generate-uuid", ("uuidgen", ";touch /tmp/PWNED;#", "RFC 4122", "nothing was changed")
    ),
}


def texts(blocks: Any) -> list[str]:
    """Every text of a message's Block Kit blocks, as Slack shows them (not JSON-escaped)."""
    if isinstance(blocks, dict):
        return [v for k, v in blocks.items() if k == "text" and isinstance(v, str)] + [
            text for v in blocks.values() for text in texts(v)
        ]
    if isinstance(blocks, list):
        return [text for item in blocks for text in texts(item)]
    return []


def status_text(stage: Stage, run_id: str) -> str:
    message = next(m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text)
    return "\n".join([message.text, *texts(message.blocks)])


def settled(stage: Stage, run_id: str) -> Run:
    """The run once it has ended or waits for a person; a waiting run is aborted and the case fails."""
    runs, redis = RunStore(stage.redis()), stage.redis()

    def done() -> Run | None:
        run = runs.load(run_id)
        return run if run is not None and (run.finished or run.gate) else None

    run = stage.wait_for(done, 180, f"run {run_id} to end or wait for a person")
    if not run.finished:
        gate = load_gate(redis, run.gate)
        stage.slack.slash("U0ALICE", CHANNEL, f"abort {run_id}")
        wait_for_run_end(stage, run_id)
        pytest.fail(f"run {run_id} was not refused: it waited at {gate.step if gate else run.gate}")
    wait_for_run_end(stage, run_id)  # the status message in Slack catches up with Redis
    return run


def state(stage: Stage) -> dict[str, str]:
    """What a restore would change, per host: the backup directory, the etcd data directory, the
    manifests and the places the manual restore moves things to."""
    return {
        host.name: root(
            stage,
            host,
            f"ls -A {BACKUP_DIR}; echo; ls -A /var/lib/etcd; echo; ls /etc/kubernetes/manifests; "
            "ls -d /home/core/assets/old-member-data /root/manifests-backup 2>&1",
        )
        for host in hosts(stage)
    }


def pwned(stage: Stage) -> list[str]:
    return [
        f"{host.name}: {found.strip()}"
        for host in hosts(stage)
        if (found := root(stage, host, f"ls -d {' '.join(PWNED)} 2>/dev/null; true").strip())
    ]


@pytest.mark.parametrize(
    ("name", "procedure"),
    [(name, "restore-manual") for name in CASES]
    + [(name, "restore") for name in ("reproduction-snapshot-name", "newest-backup-names")],
)
def test_a_hostile_value_from_one_host_is_refused_before_anything_is_written(
    stage: Stage, backup_host: Host, planter: Planter, name: str, procedure: str
) -> None:
    case = CASES[name]
    case.plant(stage, planter, backup_host)
    before = state(stage)

    _, body = stage.slack.slash("U0ALICE", CHANNEL, f"{procedure} twin recovery-host={backup_host.name}")
    run_id = started_run(body)
    run = settled(stage, run_id)

    shown = status_text(stage, run_id)
    assert run.status == "failed" and run.result.get("step") == case.step, (run.status, run.result, shown)
    for text in (hosts(stage)[case.host].name, *case.shown):
        assert text in shown, (text, shown)
    journal = Journal(stage.redis(), run_id)
    for step in ("approve-start", "copy-snapshot", "stop-static-pods", "stop-etcd"):
        assert journal.state(step)[0] is None, f"{step} was reached"
    assert pwned(stage) == [], "a planted command ran"
    assert state(stage) == before, "nothing was written, moved or copied on any host"
