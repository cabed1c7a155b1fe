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

from cryptography import x509

from sim.kubeapi.certs import load_pair, node_csr, sign_csr
from sim.twin import apiclient, kubeletpki
from sim.twin.layout import STATE_DIR, HostSpec, TwinError, TwinSpec
from sim.twin.lifecycle import listening, read_state, running_hosts

SSHRC = "/etc/ssh/sshrc"
# The node agent's record of the client certificate a Node registered with (see nodeagent.py).
SERIAL_ANNOTATION = "twin.drbot.io/kubelet-client-serial"


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


def restart_kubelet(spec: TwinSpec, host: HostSpec) -> None:
    """What `systemctl restart kubelet` on the host asks its host init for."""
    path = _state_file(spec, host, "units.json")
    try:
        units = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        units = {}
    units.setdefault("restart", {})["kubelet"] = uuid.uuid4().hex
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


def expire_certs(spec: TwinSpec) -> list[str]:
    """Every node's kubelet client certificate expires, as after a long shutdown (5.4.3): the hosts'
    kubelet-client-current.pem now holds an expired certificate, so their kubelets file node-bootstrapper
    CSRs; the workers (API-only) file theirs through the API. Returns the node names."""
    nodes = apiclient.call(spec, "GET", "/api/v1/nodes")["items"]
    for host in spec.hosts:
        _hostinit_pid(spec, host)
        kubeletpki.expire(spec, host, "client")
    hosts = {h.name for h in spec.hosts}
    workers = [n["metadata"]["name"] for n in nodes if n["metadata"]["name"] not in hosts]
    for name in workers:
        apiclient.call(spec, "POST", f"/sim/v1/nodes/{name}/bootstrap-csr", {})
    return sorted(hosts) + workers


def delete_namespace(spec: TwinSpec, name: str, timeout: float = 30.0) -> None:
    """Someone deletes a namespace with everything in it (the disaster 5.4.2.2 restores from): the API
    deletes it and its objects; this returns once it is gone."""
    apiclient.call(spec, "DELETE", f"/api/v1/namespaces/{name}")
    deadline = time.monotonic() + timeout
    while any(
        n["metadata"]["name"] == name for n in apiclient.call(spec, "GET", "/api/v1/namespaces")["items"]
    ):
        if time.monotonic() > deadline:
            raise TwinError(f"namespace {name} is still there after {timeout:g} s")
        time.sleep(0.2)


def forged_csr(spec: TwinSpec, kind: str) -> str:
    """A CSR an approver must refuse; returns its name."""
    return apiclient.call(spec, "POST", "/sim/v1/forged-csr", {"kind": kind})["csr"]


def rotate_kubelet_cert(spec: TwinSpec, host: HostSpec) -> str:
    """The kubelet renews its client certificate (as it does every few weeks): a new certificate from
    the API's CA, and the Node records its serial. Restoring a backup taken before this leaves the
    Node with the old serial. Returns the new serial."""
    _hostinit_pid(spec, host)
    ca = load_pair(spec.dir / "kubeapi" / "ca.crt", spec.dir / "kubeapi" / "ca.key")
    request, key = node_csr(host.name, serving=False)
    cert = sign_csr(ca, request, server=False)
    kubeletpki.install(spec, host, "client", cert, key)
    serial = format(x509.load_pem_x509_certificate(cert).serial_number, "x")
    patch = {"metadata": {"annotations": {SERIAL_ANNOTATION: serial}}}
    apiclient.call(spec, "PATCH", f"/api/v1/nodes/{host.name}", patch, "application/merge-patch+json")
    return serial
