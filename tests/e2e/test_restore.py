"""`/dr restore` end to end (5.4.2.2): Slack simulator → drbot serve → Redis → drbot worker → SSH and the
API → the twin. Its own twins (these tests break them) and its own Redis database (4).

Installer-provisioned twin, in order: refusals that change nothing (an unreachable host, a recovery
host that is not a control-plane host, a missing tarball, a backup from another z-stream), a
rejected start, the whole restore after a real quorum loss, then cluster-restore.sh failing.
User-provisioned twin: no Machine API; drbot tells the operator what to do and waits for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from drbot.drills.common import approve_until_done, ssh, started_run, wait_for_run_end
from drbot.drills.restore import NAMESPACE
from drbot.stage import CHANNEL, Stage, twin
from procedures.clusters import Cluster, Host, load_clusters
from workers.journal import Journal
from workers.runs import RunStore
from workers.ssh import SshPool

RESTORE_DB = "redis://127.0.0.1:6379/4"
BACKUP = "/home/core/assets/backup"


def cluster_of(stage: Stage) -> Cluster:
    return load_clusters(stage.config).get("twin")


def on(stage: Stage, host: Host, command: str) -> str:
    return ssh(stage, command, host)


def manifests(stage: Stage, host: Host) -> list[str]:
    return sorted(on(stage, host, "sudo ls /etc/kubernetes/manifests").split())


def status_message_blocks(stage: Stage, run_id: str) -> str:
    return json.dumps(next(m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text).blocks)


def run_text(stage: Stage, run_id: str) -> str:
    """The status message and its thread, as one text to search."""
    message = next(m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text)
    replies = stage.slack.thread(CHANNEL, message.ts)
    return "\n".join(
        [message.text, json.dumps(message.blocks), *(r.text + json.dumps(r.blocks) for r in replies)]
    )


def steps_run(stage: Stage, run_id: str) -> list[str]:
    return [e["step"] for e in Journal(stage.redis(), run_id).entries() if e["event"] == "started"]


def restore(stage: Stage, args: str = "") -> str:
    status, body = stage.slack.slash("U0ALICE", CHANNEL, f"restore twin {args}".strip())
    assert status == 200
    return started_run(body)


def take_backup(stage: Stage) -> None:
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
    assert "Succeeded" in wait_for_run_end(stage, started_run(body))


@pytest.fixture(scope="class")
def ipi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with Stage(tmp_path_factory.mktemp("restore-ipi"), RESTORE_DB, lease_seconds=3) as stage:
        take_backup(stage)
        yield stage


@pytest.fixture(scope="class")
def upi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    directory = tmp_path_factory.mktemp("restore-upi")
    twin("up", "--dir", str(directory), "--platform", "user-provisioned")
    try:
        with Stage(directory, RESTORE_DB, lease_seconds=3, start_twin=False) as stage:
            take_backup(stage)
            yield stage
    finally:
        twin("down", "--dir", str(directory), check=False)


class TestInstallerProvisioned:
    def test_an_unreachable_host_stops_the_preflight_and_nothing_changes(self, ipi: Stage) -> None:
        hosts = cluster_of(ipi).hosts
        before = [manifests(ipi, h) for h in hosts[:2]]
        twin("fault", "host-down", hosts[2].name, "--dir", str(ipi.directory))
        try:
            run_id = restore(ipi)
            final = wait_for_run_end(ipi, run_id, timeout=120)
        finally:
            twin("fault", "host-up", hosts[2].name, "--dir", str(ipi.directory))
        assert "Failed" in final
        text = run_text(ipi, run_id)
        assert "not every control-plane host can be reached" in text and hosts[2].name in text
        assert "nothing was changed" in text
        assert steps_run(ipi, run_id) == ["probe-hosts"]
        assert [manifests(ipi, h) for h in hosts[:2]] == before
        assert RunStore(ipi.redis()).owner_of("twin") is None, "the cluster lock is released"

    def test_bad_input_is_refused_before_anything_changes(self, ipi: Stage) -> None:
        master0 = cluster_of(ipi).hosts[0]
        _, body = ipi.slack.slash("U0ALICE", CHANNEL, "restore twin recovery-host=worker-7.twin.example.com")
        assert "is not a control-plane host of this cluster" in body, "refused before a run exists"
        cases = {
            # Slack shows the message's "<ts>" escaped, as all text from hosts.
            f"backup={BACKUP}/only-snapshot": f"no static_kuberesources_&lt;ts&gt;.tar.gz in {BACKUP}/only",
            f"backup={BACKUP}/older-z": "the backup was taken on 4.14.37 but the cluster runs 4.14.38",
        }
        on(
            ipi,
            master0,
            f"sudo mkdir -p {BACKUP}/only-snapshot {BACKUP}/older-z && cd {BACKUP} && "
            "snap=$(ls -v snapshot_*.db | tail -1) && ts=${snap#snapshot_} && ts=${ts%.db} && "
            'sudo cp "$snap" only-snapshot/ && '
            'sudo cp "$snap" "static_kuberesources_$ts.tar.gz" older-z/ && '
            'sudo sed s/4.14.38/4.14.37/ "backup-info_$ts.json" '
            '| sudo tee "older-z/backup-info_$ts.json"',
        )
        for args, reason in cases.items():
            run_id = restore(ipi, args)
            assert "Failed" in wait_for_run_end(ipi, run_id, timeout=120), args
            text = run_text(ipi, run_id)
            assert reason in text, (args, text[-1500:])
            assert "approve-start" not in steps_run(ipi, run_id)

    def test_a_recovery_host_without_the_backups_etcdctl_reads_it_with_the_etcd_image(
        self, ipi: Stage
    ) -> None:
        """As on RHCOS, etcdctl is on the host only where cluster-backup.sh downloaded it (issue 12.7)."""
        master0, master1 = cluster_of(ipi).hosts[:2]
        assert "not found" in on(ipi, master1, "sudo etcdctl version 2>&1; true")
        names = on(ipi, master0, f"cd {BACKUP} && ls snapshot_* static_kuberesources_* backup-info_*").split()
        with SshPool() as pool:  # the hosts do not trust each other: drbot carries the files
            copies = [pool.copy(master0, f"{BACKUP}/{name}", [master1]) for name in names]
        assert all(result.ok for results in copies for result in results), copies
        run_id = restore(ipi, f"recovery-host={master1.name}")
        ipi.wait_for(lambda: RunStore(ipi.redis()).load(run_id).gate, 120, "the start approval")
        checked = [
            e for e in Journal(ipi.redis(), run_id).entries("check-backup") if e["event"] == "finished"
        ]
        assert checked and checked[-1]["ok"], checked
        ipi.slack.slash("U0ALICE", CHANNEL, f"abort {run_id}")
        assert "Aborted" in wait_for_run_end(ipi, run_id, timeout=60)
        on(ipi, master1, f"sudo find {BACKUP} -mindepth 1 -delete")

    def test_a_rejected_start_stops_the_run(self, ipi: Stage) -> None:
        hosts = cluster_of(ipi).hosts
        before = [manifests(ipi, h) for h in hosts]
        run_id = restore(ipi)
        gate = ipi.wait_for(lambda: RunStore(ipi.redis()).load(run_id).gate, 60, "the start approval")

        def status_with_buttons() -> Any:
            message = next(m for m in ipi.slack.messages(CHANNEL) if f"(run {run_id})" in m.text)
            return message if gate in json.dumps(message.blocks) else None

        message = ipi.wait_for(status_with_buttons, 30, "the start approval's buttons")
        blocks = json.dumps(message.blocks)
        assert (
            "Restore *twin* from the backup" in blocks
            and "admission webhooks with failurePolicy Fail" in blocks
        )
        assert "validating/payments-policy.example.com" in blocks, "the preflight flags the blocking webhook"
        status, _ = ipi.slack.click("U0ALICE", message, "gate:approve", f"{gate}|approve")
        assert status == 200
        ipi.slack.click("U0MALLORY", message, "gate:approve", f"{gate}|approve")
        assert RunStore(ipi.redis()).load(run_id).status == "waiting", (
            "neither the requester nor mallory approved"
        )
        answers = {
            user: ipi.wait_for(lambda u=user: ipi.slack.ephemerals(CHANNEL, u), 10, f"the answer to {user}")[
                -1
            ].text
            for user in ("U0ALICE", "U0MALLORY")
        }
        assert "cannot approve its destructive step yourself" in answers["U0ALICE"]
        assert "not an approver for this cluster" in answers["U0MALLORY"]
        ipi.slack.click("U0BOB", message, "gate:reject", f"{gate}|reject")
        final = wait_for_run_end(ipi, run_id, timeout=60)
        assert "Failed" in final
        assert "rejected" in run_text(ipi, run_id).lower()
        assert [manifests(ipi, h) for h in hosts] == before

    @pytest.mark.timeout(900)  # a whole restore with API blips, on a busy 2-core machine
    def test_the_whole_restore_after_losing_quorum(self, ipi: Stage) -> None:
        api = config.new_client_from_config(cluster_of(ipi).kubeconfig)
        core = client.CoreV1Api(api)
        try:
            core.delete_namespace(NAMESPACE)
            ipi.wait_for(lambda: NAMESPACE not in _namespaces(core), 60, "payments to be deleted", 0.5)
            twin("disaster", "lose-quorum", "--dir", str(ipi.directory))
            run_id = restore(ipi)
            approve_until_done(ipi, run_id, timeout=900)
            final = wait_for_run_end(ipi, run_id, timeout=30)
            assert "Succeeded" in final, run_text(ipi, run_id)[-3000:]
            assert NAMESPACE in _namespaces(core), "the deleted namespace is back"
            ran = steps_run(ipi, run_id)
            for step in ("run-restore-script", "recreate-machines", "wait-etcd", "wait-kube-scheduler"):
                assert step in ran, step
            assert "confirm-upi-machines" not in ran
            custom = client.CustomObjectsApi(api)
            for plural in ("etcds", "kubeapiservers", "kubecontrollermanagers", "kubeschedulers"):
                obj = custom.get_cluster_custom_object("operator.openshift.io", "v1", plural, "cluster")
                reasons = {c["type"]: c.get("reason") for c in obj["status"]["conditions"]}
                assert reasons["NodeInstallerProgressing"] == "AllNodesAtLatestRevision", plural
            assert "oc -n payments rollout restart" in run_text(ipi, run_id)
            # The twin's API blipped while it ran on one kube-apiserver: drbot rode through it.
            assert "API blip:" in (ipi.directory / "kubeapi.log").read_text(errors="replace")
        finally:
            api.close()

    def test_cluster_restore_failing_stops_the_run_and_says_where(self, ipi: Stage) -> None:
        master0 = cluster_of(ipi).hosts[0]
        tools = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd-common-tools"
        on(ipi, master0, f"sudo mv {tools} /tmp/etcd-common-tools")
        try:
            run_id = restore(ipi, f"recovery-host={master0.name}")
            approve_until_done(ipi, run_id, timeout=300)
            final = wait_for_run_end(ipi, run_id, timeout=30)
        finally:
            on(ipi, master0, f"sudo mv /tmp/etcd-common-tools {tools}")
        assert "Failed" in final
        text = run_text(ipi, run_id)
        assert "cluster-restore.sh failed on" in text and "required dependencies not found" in text
        assert "it stopped before moving any static pod" in text
        assert steps_run(ipi, run_id)[-1] == "run-restore-script"
        assert "Retry" in json.dumps(
            next(m for m in ipi.slack.messages(CHANNEL) if f"(run {run_id})" in m.text).blocks
        )


class TestUserProvisioned:
    @pytest.mark.timeout(900)  # a whole restore with API blips, on a busy 2-core machine
    def test_drbot_asks_the_operator_to_recreate_the_machines(self, upi: Stage) -> None:
        hosts = cluster_of(upi).hosts
        twin("disaster", "lose-quorum", "--dir", str(upi.directory))
        run_id = restore(upi)

        instructions: list[str] = []

        def operator_recreates_machines() -> None:
            # The operator reads what drbot asks, then re-creates the machines: on the twin, the reset
            # hosts' kubelets start again and register their nodes.
            instructions.append(status_message_blocks(upi, run_id))
            for host in hosts[1:]:
                on(upi, host, "sudo systemctl restart kubelet.service")

        approve_until_done(
            upi, run_id, timeout=900, before_approving={"confirm-upi-machines": operator_recreates_machines}
        )
        final = wait_for_run_end(upi, run_id, timeout=30)
        assert "Succeeded" in final, run_text(upi, run_id)[-3000:]
        ran = steps_run(upi, run_id)
        assert "recreate-machines" not in ran and "approve-machines" not in ran
        (asked,) = instructions
        assert "This cluster is user-provisioned" in asked and "re-create the control-plane machine" in asked
        assert all(h.name in asked for h in hosts[1:]), "drbot names the machines to re-create"


def _namespaces(core: client.CoreV1Api) -> set[str]:
    return {
        n.metadata.name
        for n in core.list_namespace(_request_timeout=5).items
        if not n.metadata.deletion_timestamp
    }
