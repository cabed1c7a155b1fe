"""up/status/down of a twin of its own: reports a running twin, refuses bad input, leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim.twin import lifecycle
from sim.twin.layout import TwinError, TwinSpec
from tests.twin.conftest import ssh

pytestmark = pytest.mark.twin


def _mount_lines_mentioning(directory: Path) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/mountinfo").read_text()
            except OSError:
                continue
            found += [line for line in text.splitlines() if str(directory) in line]
    return found


def test_up_twice_reports_and_down_leaves_no_process_and_no_mount(tmp_path: Path, twin: TwinSpec) -> None:
    directory = tmp_path / "solo"
    spec, started = lifecycle.up(directory, name="solo", hosts=1)
    try:
        assert started
        assert spec.hosts[0].address != twin.hosts[0].address
        assert ssh(spec, spec.hosts[0], "sudo -n crictl ps --name '^etcd$' -q").stdout.strip()
        again, started_again = lifecycle.up(directory, name="solo", hosts=1)
        assert not started_again and again.hosts == spec.hosts
        _spec, phase, rows = lifecycle.status(directory)
        assert phase == "running" and rows[0].sshd and rows[0].etcd
        hostinit = lifecycle.read_state(directory)["pids"][spec.hosts[0].short]
        members = lifecycle.namespace_pids(hostinit)
        assert len(members) >= 4  # host init, sshd, kubelet, etcd
        assert _mount_lines_mentioning(directory)
    finally:
        lifecycle.down(directory)
    assert not [pid for pid in members if Path(f"/proc/{pid}").exists()]
    assert _mount_lines_mentioning(directory) == []
    assert lifecycle.status(directory)[1] == "down"


def test_a_directory_of_another_twin_is_refused(twin: TwinSpec) -> None:
    with pytest.raises(TwinError, match=f"belongs to twin '{twin.name}'; use --name {twin.name}"):
        lifecycle.up(twin.dir, name="other")


def test_addresses_of_a_running_twin_are_refused(tmp_path: Path, twin: TwinSpec) -> None:
    with pytest.raises(TwinError, match="belong to twin"):
        lifecycle.up(tmp_path / "clash", name="clash", first_address=twin.first_address)
    assert not (tmp_path / "clash" / "twin.json").exists()


def test_unknown_host_names_say_which_hosts_exist(twin: TwinSpec) -> None:
    with pytest.raises(TwinError, match="has no host 'master-9'; its hosts are: master-0"):
        twin.host("master-9")
