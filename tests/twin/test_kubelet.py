"""The kubelet simulator follows /etc/kubernetes/manifests, and crictl/systemctl behave like on a node."""

from __future__ import annotations

import json

import pytest

from sim.twin.layout import TwinSpec
from tests.twin.conftest import crictl_names, ssh, wait_for

pytestmark = pytest.mark.twin


def test_moving_a_manifest_away_stops_its_containers_and_back_starts_them(twin: TwinSpec) -> None:
    host = twin.hosts[2]
    scheduler = ["kube-scheduler", "kube-scheduler-cert-syncer", "kube-scheduler-recovery-controller"]
    assert sorted(crictl_names(twin, host, "kube-scheduler")) == scheduler
    moved = ssh(
        twin,
        host,
        "sudo mkdir -p /root/manifests-backup && "
        "sudo mv /etc/kubernetes/manifests/kube-scheduler-pod.yaml /root/manifests-backup/",
    )
    assert moved.returncode == 0, moved.stderr
    wait_for(
        lambda: crictl_names(twin, host, "kube-scheduler") == [], 10, "kube-scheduler containers to stop"
    )
    assert (
        ssh(twin, host, "sudo crictl ps --label io.kubernetes.container.name=kube-scheduler -q").stdout == ""
    )
    assert "kube-scheduler" in ssh(twin, host, "sudo crictl ps -a --name '^kube-scheduler$'").stdout
    ssh(twin, host, "sudo mv /root/manifests-backup/kube-scheduler-pod.yaml /etc/kubernetes/manifests/")
    wait_for(
        lambda: sorted(crictl_names(twin, host, "kube-scheduler")) == scheduler, 10, "kube-scheduler to start"
    )


def test_crictl_stop_makes_the_kubelet_start_a_new_attempt(twin: TwinSpec) -> None:
    host = twin.hosts[2]
    first = ssh(twin, host, "sudo crictl ps --name '^etcd-metrics$' -q").stdout.split()
    assert len(first) == 1
    assert ssh(twin, host, f"sudo crictl stop {first[0][:13]}").stdout.strip() == first[0][:13]

    def restarted() -> bool:
        rows = ssh(twin, host, "sudo crictl ps --name '^etcd-metrics$'").stdout.splitlines()[1:]
        return len(rows) == 1 and rows[0].split()[-2] == "1"

    wait_for(restarted, 10, "etcd-metrics attempt 1")


def test_systemctl_restart_kubelet_keeps_containers_running(twin: TwinSpec) -> None:
    host = twin.hosts[1]
    state = twin.in_host(host, "/run/twin-sim/unit-status.json")
    before = json.loads(state.read_text())["pids"]["kubelet"]
    etcd_before = ssh(twin, host, "sudo crictl ps --name '^etcd$' -q").stdout
    assert ssh(twin, host, "sudo systemctl restart kubelet.service").returncode == 0
    after = json.loads(state.read_text())["pids"]["kubelet"]
    assert after != before
    assert ssh(twin, host, "systemctl is-active kubelet").stdout.strip() == "active"
    assert ssh(twin, host, "sudo crictl ps --name '^etcd$' -q").stdout == etcd_before
