"""Disasters and faults done to a running twin from the outside, as they would happen to real hosts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

from sim.twin.layout import STATE_DIR, HostSpec, TwinError, TwinSpec
from sim.twin.lifecycle import listening, read_state, running_hosts

SSHRC = "/etc/ssh/sshrc"


def _state_file(spec: TwinSpec, host: HostSpec, name: str) -> Path:
    return spec.in_host(host, STATE_DIR) / name


def _hostinit_pid(spec: TwinSpec, host: HostSpec) -> int:
    pid = running_hosts(read_state(spec.dir)).get(host.short)
    if pid is None:
        raise TwinError(
            f"host {host.short} of twin {spec.name!r} is not running; "
            f"start the twin with: drbot twin up --dir {spec.dir}"
        )
    return pid


def _etcd_containers(spec: TwinSpec, host: HostSpec) -> list[dict]:
    try:
        state = json.loads(_state_file(spec, host, "containers.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [
        c
        for c in state["containers"]
        if c["name"] == "etcd" and c["state"] == "CONTAINER_RUNNING" and c.get("pid")
    ]


def kill_etcd(spec: TwinSpec, host: HostSpec) -> bool:
    """SIGKILL the host's etcd container, as a crash would; the kubelet notices and restarts it."""
    killed = False
    for container in _etcd_containers(spec, host):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(container["pid"], signal.SIGKILL)
            killed = True
    return killed


def lose_quorum(spec: TwinSpec, survivor: HostSpec | None = None) -> list[HostSpec]:
    """All etcd members but the survivor die with their disks: data gone, manifests left in place."""
    if len(spec.hosts) < 2:
        raise TwinError("lose-quorum needs a twin with at least 2 hosts (start one with --hosts 3)")
    survivor = survivor or spec.hosts[0]
    victims = [h for h in spec.hosts if h != survivor]
    for host in victims:
        _hostinit_pid(spec, host)
        shutil.rmtree(spec.in_host(host, "/var/lib/etcd/member"), ignore_errors=True)
        kill_etcd(spec, host)
    return victims


def _request_units(spec: TwinSpec, host: HostSpec, wanted: str, power: str) -> None:
    path = _state_file(spec, host, "units.json")
    try:
        units = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        units = {}
    units["wanted"] = {"sshd": wanted, "kubelet": wanted}
    units["power"] = power
    units["fault"] = uuid.uuid4().hex
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(units))
    tmp.replace(path)
    os.kill(_hostinit_pid(spec, host), signal.SIGUSR1)


def host_down(spec: TwinSpec, host: HostSpec, timeout: float = 15.0) -> None:
    """Power the host off: sshd, kubelet and every container stop (the host init stays to power it on)."""
    _request_units(spec, host, "inactive", "off")
    _wait(
        timeout,
        f"{host.short} to power off",
        lambda: (
            _unit_status(spec, host).get("powered_off") is True and not _unit_status(spec, host).get("pids")
        ),
    )


def host_up(spec: TwinSpec, host: HostSpec, timeout: float = 15.0) -> None:
    _request_units(spec, host, "active", "on")
    _wait(timeout, f"sshd on {host.short} to listen", lambda: listening(host.address, spec.ssh_port))


def _unit_status(spec: TwinSpec, host: HostSpec) -> dict:
    try:
        return json.loads(_state_file(spec, host, "unit-status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def slow_ssh(spec: TwinSpec, host: HostSpec, delay: float, off: bool = False) -> None:
    """Delay every SSH session on the host by `delay` seconds (sshd runs /etc/ssh/sshrc first)."""
    _hostinit_pid(spec, host)
    path = spec.in_host(host, SSHRC)
    if off:
        path.unlink(missing_ok=True)
        return
    if delay <= 0:
        raise TwinError("--delay must be a positive number of seconds")
    path.write_text(f"# twin fault slow-ssh: every session waits before it runs\nsleep {delay:g}\n")


def etcd_member_crash(spec: TwinSpec, host: HostSpec) -> None:
    _hostinit_pid(spec, host)
    if not kill_etcd(spec, host):
        raise TwinError(
            f"no etcd container runs on {host.short}; see: ssh ... core@{host.address} sudo crictl ps -a"
        )


def _wait(timeout: float, what: str, check) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TwinError(f"timed out after {timeout:.0f} s waiting for {what}")
