"""Drill: restore a cluster that lost etcd quorum (5.4.2.2), through Slack, with a second engineer approving.

alice takes a backup with `/dr backup`. Then the disaster: the first host's kubelet renews its
certificate (so its node goes NotReady once the backup is restored), the `payments` namespace is
deleted through the API, and `drbot twin disaster lose-quorum` destroys two etcd members. alice
types `/dr restore`; bob clicks every approval and CSR button drbot posts. The drill then proves the
namespace is back, etcd has one healthy member per host, and every static-pod operator is at its
latest revision; it prints how the run's time splits between drbot, waits, remote commands, API
calls and people.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from drbot.drills.common import Report, approve_until_done, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage, twin
from procedures.clusters import Cluster, load_clusters
from procedures.i18n import t
from procedures.registry import PROCEDURES
from procedures.steps import Approval, Call, Choice, Command, WaitUntil
from workers.journal import Journal

NAMESPACE = "payments"
RESTORE_TIMEOUT = 900.0
STATIC_POD_OPERATORS = ("etcds", "kubeapiservers", "kubecontrollermanagers", "kubeschedulers")


def run(stage: Stage, report: Report) -> None:
    cluster = load_clusters(stage.config).get(load_clusters(stage.config).names()[0])
    api = config.new_client_from_config(cluster.kubeconfig)
    try:
        _drill(stage, report, cluster, api)
    finally:
        api.close()


def _drill(stage: Stage, report: Report, cluster: Cluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with report.phase(f"alice types /dr backup {cluster.name}"):
        report.check(_namespace_exists(core), f"namespace {NAMESPACE} exists before the disaster")
        status, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup {cluster.name}")
        final = wait_for_run_end(stage, started_run(body))
        report.check(t("status.succeeded") in final, "the backup succeeded")
    with report.phase(f"disaster: kubelet certificate renewed, namespace {NAMESPACE} deleted, quorum lost"):
        # After the backup: once restored, the Node remembers the old certificate, so this kubelet's
        # node goes NotReady until its PEM files are cleared and its new CSR approved (steps 9-11).
        twin("fault", "kubelet-cert-rotated", cluster.hosts[0].name, "--dir", str(stage.directory))
        twin("disaster", "delete-namespace", NAMESPACE, "--dir", str(stage.directory))
        report.check(not _namespace_exists(core), f"namespace {NAMESPACE} deleted through the API")
        twin("disaster", "lose-quorum", "--dir", str(stage.directory))
        report.check(not _api_answers(core), "the API no longer answers (etcd has no quorum)")
    with report.phase(f"alice types /dr restore {cluster.name}; bob approves"):
        status, body = stage.slack.slash("U0ALICE", CHANNEL, f"restore {cluster.name}")
        report.check(status == 200, f"/dr restore acknowledged (HTTP {status})")
        run_id = started_run(body)
        clicks = approve_until_done(stage, run_id)
        final = wait_for_run_end(stage, run_id, timeout=30)
        report.check(t("status.succeeded") in final, f"the restore succeeded ({clicks} clicks by bob)")
    with report.phase("check the cluster"):
        report.check(
            Stage.wait_for(lambda: _namespace_exists(core), 60, f"namespace {NAMESPACE}", 1.0),
            f"namespace {NAMESPACE} is back",
        )
        members = _etcd_members(stage, cluster)
        report.check(
            len(members) == len(cluster.hosts) and all(m["healthy"] for m in members),
            f"etcd has {len(cluster.hosts)} healthy members: "
            + ", ".join(f"{m['endpoint']} {'healthy' if m['healthy'] else 'UNHEALTHY'}" for m in members),
        )
        custom = client.CustomObjectsApi(api)
        for plural in STATIC_POD_OPERATORS:
            reason, message = _installer_state(custom, plural)
            report.check(
                reason == "AllNodesAtLatestRevision", f"{plural}: {reason or 'progressing'}, {message}"
            )
    print(f"  the twin's API blipped {_api_blips(stage)} times (500, 429, resets) during the drill")
    _print_time_split(stage, run_id)


def _api_blips(stage: Stage) -> int:
    """How many transient errors the twin's API gave (its log has one line each)."""
    try:
        log = (stage.directory / "kubeapi.log").read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return log.count("API blip:")


def _namespace_exists(core: client.CoreV1Api) -> bool:
    try:
        namespace = core.read_namespace(NAMESPACE, _request_timeout=5)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return namespace.metadata.deletion_timestamp is None


def _api_answers(core: client.CoreV1Api) -> bool:
    try:
        core.list_namespace(_request_timeout=5)
    except Exception:  # any failure is "does not answer" here
        return False
    return True


def _etcd_members(stage: Stage, cluster: Cluster) -> list[dict[str, Any]]:
    """`etcdctl endpoint health` from the machine, with the twin's etcd client certificate."""
    pki = stage.directory / "pki"
    endpoints = ",".join(f"https://{h.address}:2379" for h in cluster.hosts)
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
        return [{"endpoint": e["endpoint"], "healthy": bool(e["health"])} for e in json.loads(result.stdout)]
    except (json.JSONDecodeError, KeyError, TypeError):
        return [{"endpoint": result.stderr.strip()[-200:] or "etcdctl gave no answer", "healthy": False}]


def _installer_state(custom: client.CustomObjectsApi, plural: str) -> tuple[str, str]:
    obj = custom.get_cluster_custom_object("operator.openshift.io", "v1", plural, "cluster")
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "NodeInstallerProgressing":
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    return "", "no NodeInstallerProgressing condition"


def _print_time_split(stage: Stage, run_id: str) -> None:
    """The run's wall time split by what the steps did, from the journal's durations."""
    procedure = PROCEDURES["restore"]
    kinds = {step.id: step for step in procedure.steps}
    entries = Journal(stage.redis(), run_id).entries()
    if not entries:
        return
    wall = entries[-1]["at"] - entries[0]["at"]
    split = {"remote commands (SSH)": 0.0, "waits (bounded polls)": 0.0, "API calls": 0.0}
    for entry in entries:
        step = kinds.get(entry["step"])
        if entry["event"] != "finished" or "duration" not in entry or step is None:
            continue
        if isinstance(step, Command):
            split["remote commands (SSH)"] += entry["duration"]
        elif isinstance(step, WaitUntil):
            split["waits (bounded polls)"] += entry["duration"]
        elif isinstance(step, Call):
            split["API calls"] += entry["duration"]
    people = _gate_time(entries, kinds)
    split["people (approvals, choices)"] = people
    split["drbot itself (queueing, journaling, Slack)"] = max(0.0, wall - sum(split.values()))
    print(f"\n=== Where the restore's {wall:.1f} s went (journal) ===")
    for name, seconds in split.items():
        print(f"{seconds:8.2f} s  {100 * seconds / wall if wall else 0:5.1f} %  {name}")


def _gate_time(entries: list[dict[str, Any]], kinds: dict[str, Any]) -> float:
    """From the end of the step before each gate to the gate's decision."""
    total, last = 0.0, entries[0]["at"]
    for entry in entries:
        step = kinds.get(entry["step"])
        if entry["event"] == "finished" and isinstance(step, Approval | Choice):
            total += entry["at"] - last
        if entry["event"] in ("finished", "skipped"):
            last = entry["at"]
    return total
