"""What a twin host looks like from the machine: its containers, its kubelet and its kubelet PKI.

Read from the host's own files (DIR/hosts/<host>/root/...), the way the node agent and the API
server's up-check see the hosts without entering them.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from cryptography import x509

from sim.twin.layout import STATE_DIR, HostSpec, TwinSpec

KUBELET_PKI = "/var/lib/kubelet/pki"
RUNNING = "CONTAINER_RUNNING"


def _json(path: Path, default: dict) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def containers(spec: TwinSpec, host: HostSpec) -> dict:
    return _json(spec.in_host(host, STATE_DIR) / "containers.json", {"pods": {}, "containers": []})


def running(spec: TwinSpec, host: HostSpec, name: str) -> bool:
    return any(c["name"] == name and c["state"] == RUNNING for c in containers(spec, host)["containers"])


def kubelet_pid(spec: TwinSpec, host: HostSpec) -> int | None:
    """The kubelet's pid while it runs (a restart gives a new pid), None when it is stopped."""
    status = _json(spec.in_host(host, STATE_DIR) / "unit-status.json", {})
    pid = (status.get("pids") or {}).get("kubelet")
    if not pid or status.get("powered_off"):
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state == "Z" else int(pid)


def host_path(spec: TwinSpec, host: HostSpec, path: str) -> Path:
    """Follow symlinks the way the host would (their targets are host paths)."""
    current = spec.in_host(host, path)
    for _ in range(8):
        if not current.is_symlink():
            return current
        target = os.readlink(current)
        current = spec.in_host(host, target) if target.startswith("/") else current.parent / target
    return current


def kubelet_cert(spec: TwinSpec, host: HostSpec, kind: str = "client") -> x509.Certificate | None:
    """The certificate in kubelet-<kind>-current.pem, or None when the file is missing or unreadable."""
    try:
        pem = host_path(spec, host, f"{KUBELET_PKI}/kubelet-{kind}-current.pem").read_bytes()
        return x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError):
        return None


def valid(cert: x509.Certificate | None) -> bool:
    return cert is not None and cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
