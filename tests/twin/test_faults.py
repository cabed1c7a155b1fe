"""Faults on one host of the session twin, each undone before the test ends."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from sim.twin import disasters, lifecycle
from sim.twin.layout import TwinError, TwinSpec
from tests.twin.conftest import crictl_names, ssh, wait_for

pytestmark = pytest.mark.twin


def test_host_down_stops_sshd_and_etcd_and_host_up_brings_them_back(twin: TwinSpec) -> None:
    host = twin.hosts[2]
    disasters.host_down(twin, host)
    assert not lifecycle.listening(host.address, twin.ssh_port)
    assert not lifecycle.etcd_healthy(twin, [host])
    assert lifecycle.etcd_healthy(twin, list(twin.hosts[:2]))
    disasters.host_up(twin, host)
    wait_for(lambda: lifecycle.etcd_healthy(twin, [host]), 20, f"etcd on {host.short} after host-up")
    assert "kube-apiserver" in crictl_names(twin, host, "kube-apiserver")


def test_slow_ssh_delays_sessions_until_turned_off(twin: TwinSpec) -> None:
    host = twin.hosts[1]
    delay = 4.0  # well above an SSH round trip on a busy 2-core machine, so "fast again" is clear
    disasters.slow_ssh(twin, host, delay)
    try:
        started = time.monotonic()
        assert ssh(twin, host, "true").returncode == 0
        assert time.monotonic() - started >= delay
    finally:
        disasters.slow_ssh(twin, host, 0, off=True)
    started = time.monotonic()
    assert ssh(twin, host, "true").returncode == 0
    assert time.monotonic() - started < delay


def test_etcd_member_crash_is_restarted_by_the_kubelet(twin: TwinSpec) -> None:
    host = twin.hosts[1]
    disasters.etcd_member_crash(twin, host)

    def restarted() -> bool:
        rows = ssh(twin, host, "sudo crictl ps --name '^etcd$'").stdout.splitlines()[1:]
        return len(rows) == 1 and rows[0].split()[-2] != "0"

    wait_for(restarted, 15, "a new etcd attempt")
    wait_for(lambda: lifecycle.etcd_healthy(twin), 20, "three healthy members again")


def test_an_address_in_use_fails_before_anything_starts(tmp_path: Path, twin: TwinSpec) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.233", 2379))
        squatter.listen()
        with pytest.raises(TwinError, match=r"127\.0\.0\.233:2379 is already in use"):
            lifecycle.up(tmp_path / "busy", name="busy", first_address="127.0.0.231")
    assert not lifecycle.is_live(tmp_path / "busy")


def test_missing_programs_name_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(lifecycle.PREREQUISITES, "/nonexistent/etcd", "etcd-server")
    with pytest.raises(TwinError, match="apt-get install -y etcd-server"):
        lifecycle.check_prerequisites()
