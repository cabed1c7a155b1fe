"""The installer pods of the static-pod operators, done to the twin's hosts from the machine.

When an operator rolls revision N to a node, the installer writes the revision's files
(static-pod-resources/<component>-pod-N/) and the manifest into that host's
/etc/kubernetes/manifests; the host's kubelet simulator does the rest. For etcd it also does what
cluster-etcd-operator does for a node that is not (or no longer) a member: add it as a learner, let
the new pod join the existing cluster with an empty data dir, then promote it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from pathlib import Path

from sim.twin import hostview, manifests
from sim.twin.layout import HostSpec, TwinSpec
from sim.twin.lifecycle import etcd_healthy, etcdctl

log = logging.getLogger("sim.twin.installer")

COMPONENTS = {
    "kubeapiservers": "kube-apiserver",
    "kubecontrollermanagers": "kube-controller-manager",
    "kubeschedulers": "kube-scheduler",
}
RESOURCES = "/etc/kubernetes/static-pod-resources"
MANIFESTS = "/etc/kubernetes/manifests"


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def _runs(spec: TwinSpec, host: HostSpec, manifest: str, text: str, container: str) -> bool:
    """True when the kubelet runs the pod of exactly this manifest text, with `container` up."""
    state = hostview.containers(spec, host)
    pod = state["pods"].get(manifest)
    if pod is None or pod["digest"] != hashlib.sha256(text.encode()).hexdigest():
        return False
    return any(
        c["pod_id"] == pod["pod_id"] and c["name"] == container and c["state"] == hostview.RUNNING
        for c in state["containers"]
    )


class HostInstaller:
    """Installer(plural, node name, revision) -> True once the node's host runs that revision."""

    def __init__(self, spec: TwinSpec) -> None:
        self.spec = spec

    def __call__(self, plural: str, node_name: str, revision: int) -> bool:
        host = next((h for h in self.spec.hosts if h.name == node_name), None)
        if host is None:
            return True  # not one of the twin's hosts: nothing to put anywhere
        if plural == "etcds":
            return self.etcd(host, revision)
        component = COMPONENTS.get(plural)
        return True if component is None else self.component(host, component, revision)

    def component(self, host: HostSpec, component: str, revision: int) -> bool:
        text = manifests.to_json(manifests.component_pod(component, revision))
        at = lambda path: self.spec.in_host(host, path)  # noqa: E731
        revision_dir = at(f"{RESOURCES}/{component}-pod-{revision}")
        _write_if_changed(revision_dir / f"{component}-pod.yaml", text)
        _write_if_changed(
            revision_dir / "configmaps" / "config" / "config.yaml",
            f"apiVersion: v1\nkind: {component}Config\n",
        )
        manifest = f"{component}-pod.yaml"
        if _write_if_changed(at(f"{MANIFESTS}/{manifest}"), text):
            log.info("installer: %s revision %d on %s", component, revision, host.short)
            return False
        return _runs(self.spec, host, manifest, text, component)

    def etcd(self, host: HostSpec, revision: int) -> bool:
        text = manifests.to_json(manifests.etcd_pod(host, self.spec, revision))
        at = lambda path: self.spec.in_host(host, path)  # noqa: E731
        revision_dir = at(f"{RESOURCES}/etcd-pod-{revision}")
        _write_if_changed(revision_dir / "etcd-pod.yaml", text)
        _write_if_changed(revision_dir / "configmaps" / "etcd-pod" / "pod.yaml", text)
        manifest = at(f"{MANIFESTS}/etcd-pod.yaml")
        if not (manifest.exists() and manifest.read_text() == text):
            if not self._ensure_member(host):
                return False
            _write_if_changed(manifest, text)
            log.info("installer: etcd revision %d on %s", revision, host.short)
            return False
        member = self._member(host)
        if member is None or not _runs(self.spec, host, "etcd-pod.yaml", text, "etcd"):
            return False
        if member.get("isLearner"):
            etcdctl(self.spec, "member", "promote", format(int(member["ID"]), "x"))
            return False
        return bool(member.get("name")) and etcd_healthy(self.spec, [host])

    def _members(self) -> list[dict] | None:
        result = etcdctl(self.spec, "member", "list", "-w", "json")
        if result.returncode != 0:
            return None
        return json.loads(result.stdout).get("members", [])

    def _member(self, host: HostSpec) -> dict | None:
        peer = f"https://{host.address}:2380"
        return next((m for m in self._members() or [] if peer in (m.get("peerURLs") or [])), None)

    def _ensure_member(self, host: HostSpec) -> bool:
        """Make the host's etcd a member the new pod can start as; False while that is not possible."""
        members = self._members()
        if members is None:
            return False
        peer = f"https://{host.address}:2380"
        mine = next((m for m in members if peer in (m.get("peerURLs") or [])), None)
        data = self.spec.in_host(host, "/var/lib/etcd/member")
        if mine is not None and mine.get("name") and (data.exists() or etcd_healthy(self.spec, [host])):
            return True  # a started member with its data (e.g. the recovery host): just restart it
        if mine is not None and mine.get("name"):
            # Started once, data gone: remove it so it can join again as a new member.
            if etcdctl(self.spec, "member", "remove", format(int(mine["ID"]), "x")).returncode != 0:
                return False
            mine = None
        if mine is None:
            # Data from an old cluster (before the restore) would make etcd refuse to join.
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(data)
            self.spec.in_host(host, "/var/lib/etcd").mkdir(mode=0o700, exist_ok=True)
            added = etcdctl(self.spec, "member", "add", host.name, f"--peer-urls={peer}", "--learner")
            if added.returncode != 0:
                log.info("installer: member add %s failed: %s", host.short, added.stderr.strip())
                return False
        return True
