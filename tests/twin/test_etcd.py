"""After `up`, etcd has three healthy members, reachable the runbook's way (crictl exec etcdctl)."""

from __future__ import annotations

import pytest

from sim.twin import lifecycle
from sim.twin.layout import TwinSpec
from tests.twin.conftest import ssh

pytestmark = pytest.mark.twin


def test_three_healthy_members_from_the_machine(twin: TwinSpec) -> None:
    health = lifecycle.etcdctl(twin, "endpoint", "health", "--cluster")
    assert health.returncode == 0, health.stderr
    assert health.stderr.count("is healthy") + health.stdout.count("is healthy") == 3


def test_crictl_exec_etcdctl_works_without_flags(twin: TwinSpec) -> None:
    host = twin.hosts[1]
    members = ssh(
        twin, host, "sudo crictl exec -it $(sudo crictl ps --name etcdctl -q) etcdctl member list -w table"
    )
    assert members.returncode == 0, members.stderr
    rows = [line for line in members.stdout.splitlines() if "started" in line]
    assert sorted(r.split("|")[3].strip() for r in rows) == sorted(h.name for h in twin.hosts)
    status = ssh(
        twin,
        host,
        "sudo crictl exec -it $(sudo crictl ps | grep etcdctl | awk '{print $1}') "
        "etcdctl endpoint status -w table",
    )
    assert status.returncode == 0, status.stderr
    endpoints = [line for line in status.stdout.splitlines() if "https://" in line]
    assert len(endpoints) == 3
    assert [e.split("|")[5].strip() for e in endpoints].count("true") == 1
