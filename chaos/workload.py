"""What people do on the twin around the faults: act at the same instant, take a backup, put a copy of
it on a second host (so a restore asks which host to recover on), put back what an aborted restore
moved, and tell whether an abort stopped a run.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from chaos.scene import Scene
from drbot.drills.common import ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, StageError
from procedures.clusters import Host
from procedures.i18n import t
from workers.runs import ABORTED, Run

HEALTHY_TIMEOUT = 120.0
WAIT_ABORTED = "step.wait_aborted"


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def one(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def take_backup(current: Scene) -> Host:
    """alice takes a backup with /dr backup; returns the host it is on."""
    _, body = current.stage.slack.slash("U0ALICE", CHANNEL, f"backup {current.cluster.name}")
    final = wait_for_run_end(current.stage, started_run(body))
    if t("status.succeeded") not in final:
        raise StageError(f"the backup did not succeed: {final}")
    directory = current.cluster.backup_dir
    for host in current.cluster.hosts:
        if "snapshot_" in ssh(current.stage, f"sudo ls {directory}", host):
            return host
    raise StageError(f"no host holds a backup in {directory}")


def copy_backup(current: Scene, source: Host, target: Host) -> None:
    """The backup directory from one host to another, as `ssh a tar c | ssh b tar x` would."""
    parent, name = current.cluster.backup_dir.rsplit("/", 1)
    reader = subprocess.Popen(
        [*_ssh_argv(source), f"sudo tar -C {parent} -cf - {name}"], stdout=subprocess.PIPE
    )
    writer = subprocess.run(
        [*_ssh_argv(target), f"sudo mkdir -p {parent} && sudo tar -C {parent} -xf -"],
        stdin=reader.stdout,
        capture_output=True,
        timeout=120,
    )
    if reader.wait(timeout=120) != 0 or writer.returncode != 0:
        raise StageError(f"copying the backup to {target.name} failed: {writer.stderr.decode()[-300:]}")


def _ssh_argv(host: Host) -> list[str]:
    return [
        "ssh",
        "-i",
        host.key,
        "-o",
        f"UserKnownHostsFile={host.known_hosts}",
        "-o",
        "BatchMode=yes",
        "-p",
        str(host.port),
        f"{host.user}@{host.address}",
    ]


PUT_BACK = (
    "for m in etcd-pod.yaml kube-apiserver-pod.yaml; do "
    "if [ -f /tmp/$m ] && [ ! -f /etc/kubernetes/manifests/$m ]; then "
    "sudo mv /tmp/$m /etc/kubernetes/manifests/$m && echo put back $m; fi; done"
)
"""The restore's first steps move these manifests to /tmp (5.4.2.2 step 4); a person moves them back."""


def put_back_static_pods(current: Scene) -> list[str]:
    """After an aborted restore: what it moved aside goes back, and etcd is healthy on every host again."""
    moved = [f"{host.name}: {line}" for host in current.cluster.hosts for line in _lines(current, host)]
    if moved:
        current.stage.wait_for(
            lambda: etcd_healthy(current), HEALTHY_TIMEOUT, "etcd healthy on every host", 1.0
        )
    return moved


def _lines(current: Scene, host: Host) -> list[str]:
    return [line for line in ssh(current.stage, PUT_BACK, host).splitlines() if line.startswith("put back")]


def etcd_healthy(current: Scene) -> bool:
    """`etcdctl endpoint health` from the machine with the twin's client certificate, as an SRE checks."""
    pki = current.stage.directory / "pki"
    endpoints = ",".join(f"https://{h.address}:2379" for h in current.cluster.hosts)
    result = subprocess.run(
        [
            "etcdctl",
            f"--endpoints={endpoints}",
            f"--cacert={pki / 'etcd-ca.crt'}",
            f"--cert={pki / 'etcd-client.crt'}",
            f"--key={pki / 'etcd-client.key'}",
            "endpoint",
            "health",
            "-w",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    try:
        members = json.loads(result.stdout)
    except json.JSONDecodeError:
        return False
    return len(members) == len(current.cluster.hosts) and all(m.get("health") for m in members)


def stopped_by_abort(run: Run | None) -> bool:
    """Aborted, or failed because an abort cut its step's wait short (how the engine ends a wait)."""
    summary = run.result.get("summary", {}) if run else {}
    return run is not None and (run.status == ABORTED or summary.get("key") == WAIT_ABORTED)
