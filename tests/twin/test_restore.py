"""The runbook's restore (5.4.2.2) over SSH: backup, more writes, quorum lost, cluster-restore.sh.

Destructive for the session twin, so it lives in the module that runs last.
"""

from __future__ import annotations

import json
import re

import pytest

from sim.twin import disasters, lifecycle
from sim.twin.layout import TwinSpec
from tests.twin.conftest import paramiko_client, run_paramiko, ssh, wait_for

pytestmark = pytest.mark.twin


def test_restore_brings_back_the_backup_on_a_single_member(twin: TwinSpec) -> None:
    recovery = twin.hosts[0]
    assert lifecycle.etcdctl(twin, "put", "/drill/before-backup", "kept").returncode == 0
    old_cluster = json.loads(lifecycle.etcdctl(twin, "endpoint", "status", "-w", "json").stdout)[0]["Status"][
        "header"
    ]

    backup = ssh(twin, recovery, "sudo -E /usr/local/bin/cluster-backup.sh /home/core/assets/backup")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert (
        "snapshot db and kube resources are successfully saved to /home/core/assets/backup" in backup.stdout
    )
    files = ssh(twin, recovery, "sudo ls /home/core/assets/backup").stdout.split()
    assert len(files) == 2
    assert re.fullmatch(r"snapshot_\d{4}-\d\d-\d\d_\d{6}\.db", files[0])
    assert re.fullmatch(r"static_kuberesources_\d{4}-\d\d-\d\d_\d{6}\.tar\.gz", files[1])

    assert lifecycle.etcdctl(twin, "put", "/drill/after-backup", "lost").returncode == 0
    disasters.lose_quorum(twin, recovery)
    wait_for(lambda: not lifecycle.etcd_healthy(twin, [recovery]), 15, "etcd to lose quorum")

    client = paramiko_client(twin, recovery)
    try:
        status, out, err = run_paramiko(
            client, "sudo -E /usr/local/bin/cluster-restore.sh /home/core/assets/backup"
        )
    finally:
        client.close()
    assert status == 0, out + err
    for line in (
        "...stopping etcd-pod.yaml",
        "Moving etcd data-dir /var/lib/etcd/member to /var/lib/etcd-backup",
        "starting restore-etcd static pod",
        "starting kube-apiserver-pod.yaml",
    ):
        assert line in out

    wait_for(lambda: lifecycle.etcd_healthy(twin, [recovery]), 30, "the restored etcd member")
    endpoint = [f"https://{recovery.address}:2379"]
    members = lifecycle.etcdctl(twin, "member", "list", endpoints=endpoint).stdout.splitlines()
    assert len(members) == 1 and recovery.name in members[0]
    keys = lifecycle.etcdctl(
        twin, "get", "--prefix", "/drill/", "--keys-only", endpoints=endpoint
    ).stdout.split()
    assert keys == ["/drill/before-backup"]
    new_cluster = json.loads(
        lifecycle.etcdctl(twin, "endpoint", "status", "-w", "json", endpoints=endpoint).stdout
    )
    assert new_cluster[0]["Status"]["header"]["cluster_id"] != old_cluster["cluster_id"]
    running = ssh(twin, recovery, "sudo crictl ps | grep etcd | egrep -v 'operator|etcd-guard'").stdout
    assert [line.split()[-3] for line in running.splitlines()] == ["etcd"]
