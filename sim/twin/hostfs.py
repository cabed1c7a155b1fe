"""Lays out one twin host's own files (what its bind mounts show) before the host starts."""

from __future__ import annotations

import datetime
import json
import os
import shutil
from importlib import resources
from pathlib import Path

from sim.twin import manifests, pki
from sim.twin.hostscripts import SCRIPTS, HostScripts
from sim.twin.layout import (
    CODE_DIR,
    ETCD_SCRIPTS,
    HOST_MOUNTS,
    INVOCATION_LOG,
    RESTORE_POD,
    SCRIPTS_DIR,
    STATE_DIR,
    HostSpec,
    TwinSpec,
)
from sim.twin.sshd import install_authorized_key, sshd_config

PACKAGE = Path(str(resources.files("sim.twin")))
PYTHON_TOOLS = ("crictl", "ip", "systemctl", "podman", "oc")
SHELL_TOOLS = {
    "restorecon": "restorecon.sh",
    "tar": "tar.sh",
    "cluster-backup.sh": "cluster-backup.sh",
    "cluster-restore.sh": "cluster-restore.sh",
}


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)


def render_host(
    spec: TwinSpec,
    host: HostSpec,
    etcd_pki: pki.EtcdPki,
    client_key: str,
    host_key: Path,
    core: tuple[int, int],
    scripts: HostScripts,
) -> None:
    for _target, mount_dir in HOST_MOUNTS:
        spec.host_root(host, mount_dir).mkdir(parents=True, exist_ok=True)
    at = lambda path: spec.in_host(host, path)  # noqa: E731
    _kubernetes(spec, host, etcd_pki, at, scripts)
    _kubelet(host, at)
    at("/var/lib/etcd").mkdir(mode=0o700, exist_ok=True)
    at("/tmp").chmod(0o1777)
    at("/root").chmod(0o700)
    install_authorized_key(at("/home/core"), client_key, *core)
    write(at("/etc/ssh/sshd_config"), sshd_config(host.address, spec.ssh_port))
    shutil.copy(host_key, at("/etc/ssh/ssh_host_ed25519_key"))
    shutil.copy(f"{host_key}.pub", at("/etc/ssh/ssh_host_ed25519_key.pub"))
    at("/etc/ssh/ssh_host_ed25519_key").chmod(0o600)
    at("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    state = at(STATE_DIR)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    write(state / "ip.json", json.dumps(_interfaces(spec, host), indent=1))
    _tools(host, at, scripts)


def _kubernetes(spec: TwinSpec, host: HostSpec, etcd_pki: pki.EtcdPki, at, scripts: HostScripts) -> None:
    resources_dir = at("/etc/kubernetes/static-pod-resources")
    for revision in (manifests.ETCD_REVISION_BOOTSTRAP, manifests.ETCD_REVISION):
        pod = manifests.to_json(manifests.etcd_pod(host, spec, revision))
        write(resources_dir / f"etcd-pod-{revision}" / "etcd-pod.yaml", pod)
        write(resources_dir / f"etcd-pod-{revision}" / "configmaps" / "etcd-pod" / "pod.yaml", pod)
    write(
        at("/etc/kubernetes/manifests/etcd-pod.yaml"),
        manifests.to_json(manifests.etcd_pod(host, spec, manifests.ETCD_REVISION_BOOTSTRAP)),
    )
    for component, revision in manifests.REVISIONS.items():
        pod = manifests.to_json(manifests.component_pod(component))
        revision_dir = resources_dir / f"{component}-pod-{revision}"
        write(revision_dir / f"{component}-pod.yaml", pod)
        write(
            revision_dir / "configmaps" / "config" / "config.yaml",
            f"apiVersion: v1\nkind: {component}Config\n",
        )
        write(at(f"/etc/kubernetes/manifests/{component}-pod.yaml"), pod)
    write(at("/etc/kubernetes/manifests/keepalived.yaml"), manifests.keepalived_yaml(spec))
    write(
        resources_dir / "keepalived" / "keepalived.conf",
        f"# api {spec.api_vip}, ingress {spec.ingress_vip}\n",
    )
    pki.write_etcd_certs(resources_dir / "etcd-certs", etcd_pki)
    scripts_dir = at(ETCD_SCRIPTS)
    write(scripts_dir / "etcd.env", manifests.render_env_file(manifests.etcd_env(spec)))
    write(scripts_dir / "etcd-common-tools", (PACKAGE / "scripts" / "etcd-common-tools.sh").read_text())
    for name in SCRIPTS:
        write(scripts_dir / name, scripts.for_host(name, host), 0o755)
    write(at(RESTORE_POD), manifests.restore_pod_yaml(host))
    kubeconfigs = resources_dir / "kube-apiserver-certs" / "secrets" / "node-kubeconfigs"
    for name, server in (
        ("localhost", "https://localhost:6443"),
        ("localhost-recovery", "https://localhost:6443"),
        ("lb-int", f"https://api-int.{spec.name}.example.com:6443"),
        ("lb-ext", f"https://api.{spec.name}.example.com:6443"),
    ):
        write(kubeconfigs / f"{name}.kubeconfig", _kubeconfig(name, server), 0o600)


def _kubeconfig(name: str, server: str) -> str:
    tls_name = "\n    tls-server-name: localhost-recovery" if name == "localhost-recovery" else ""
    return f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    server: {server}{tls_name}
  name: {name}
contexts:
- context:
    cluster: {name}
    user: system:admin
  name: system:admin
current-context: system:admin
users:
- name: system:admin
  user: {{}}
"""


def _kubelet(host: HostSpec, at) -> None:
    pki_dir = at("/var/lib/kubelet/pki")
    pki_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    for kind in ("client", "server"):
        dated = pki_dir / f"kubelet-{kind}-{stamp}.pem"
        write(dated, pki.kubelet_pair(host.name, host.address), 0o600)
        current = pki_dir / f"kubelet-{kind}-current.pem"
        if current.is_symlink() or current.exists():
            current.unlink()
        current.symlink_to(f"/var/lib/kubelet/pki/{dated.name}")
    write(at("/var/lib/kubelet/config.json"), "{}\n", 0o600)


def _interfaces(spec: TwinSpec, host: HostSpec) -> list[dict]:
    br_ex = [{"cidr": f"{host.address}/8"}]
    if host.index == 0:
        # keepalived starts with both VIPs on the first control-plane host.
        br_ex += [
            {"cidr": f"{spec.api_vip}/32", "secondary": True},
            {"cidr": f"{spec.ingress_vip}/32", "secondary": True},
        ]
    mac = f"52:54:00:00:00:{host.index + 0x10:02x}"
    return [
        {"name": "lo", "mtu": 65536, "mac": "00:00:00:00:00:00", "addresses": [{"cidr": "127.0.0.1/8"}]},
        {"name": "br-ex", "mtu": 1500, "mac": mac, "addresses": br_ex},
    ]


def _tools(host: HostSpec, at, scripts: HostScripts) -> None:
    bin_dir = at("/usr/local/bin")
    for tool in PYTHON_TOOLS:
        write(bin_dir / tool, f'#!/bin/sh\nexec /usr/bin/python3 -s {CODE_DIR}/tools/{tool}.py "$@"\n', 0o755)
    # The shell tools run through a shim that logs each invocation (invocations.py); the scripts
    # themselves stay as they are, in the twin's state directory.
    for tool, source in SHELL_TOOLS.items():
        text = scripts.for_host(tool, host) if tool in SCRIPTS else (PACKAGE / "scripts" / source).read_text()
        write(at(f"{SCRIPTS_DIR}/{tool}"), text, 0o755)
        shim = f"exec /usr/bin/python3 -s {CODE_DIR}/invocations.py run {tool} {SCRIPTS_DIR}/{tool}"
        write(bin_dir / tool, f'#!/bin/sh\n{shim} "$@"\n', 0o755)
    # Tools run as core (no sudo) log too.
    write(at(INVOCATION_LOG), "", 0o666)


def write_ovn_databases(spec: TwinSpec, host: HostSpec, directory: str) -> None:
    """The node's OVN northbound and southbound databases (what the restore procedures delete)."""
    for name in ("ovnnb_db.db", "ovnsb_db.db"):
        write(spec.in_host(host, f"{directory}/{name}"), f"OVSDB CLUSTER 0 {name} {host.name}\n{{}}\n", 0o640)


def host_mount_args() -> list[str]:
    return [f"--code-dir={CODE_DIR}", *(f"--mount={target}={mount_dir}" for target, mount_dir in HOST_MOUNTS)]


def ensure_mountpoints() -> None:
    for target in (CODE_DIR, *(target for target, _ in HOST_MOUNTS)):
        os.makedirs(target, exist_ok=True)
