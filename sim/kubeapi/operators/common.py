"""Helpers shared by the simulated controllers."""

from __future__ import annotations

import hashlib
import uuid

from ..resources import ResourceType, find
from ..store import now_rfc3339


def resource(group: str, version: str, plural: str) -> ResourceType:
    res = find(group, version, plural)
    if res is None:
        raise KeyError(f"{plural}.{group}/{version} is not in the resource table")
    return res


NODES = resource("", "v1", "nodes")
PODS = resource("", "v1", "pods")
CLAIMS = resource("", "v1", "persistentvolumeclaims")
CONFIGMAPS = resource("", "v1", "configmaps")
NAMESPACES = resource("", "v1", "namespaces")
CSRS = resource("certificates.k8s.io", "v1", "certificatesigningrequests")
MACHINES = resource("machine.openshift.io", "v1beta1", "machines")
CLUSTEROPERATORS = resource("config.openshift.io", "v1", "clusteroperators")
DEPLOYMENTS = resource("apps", "v1", "deployments")
DAEMONSETS = resource("apps", "v1", "daemonsets")
STATEFULSETS = resource("apps", "v1", "statefulsets")

MASTER_LABEL = "node-role.kubernetes.io/master"


def set_condition(
    conditions: list[dict], type_: str, status: str, reason: str = "", message: str = "", **extra: str
) -> list[dict]:
    """Set one condition, keeping lastTransitionTime when the status does not change."""
    out = [dict(c) for c in conditions]
    for condition in out:
        if condition.get("type") == type_:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = now_rfc3339()
            condition.update(status=status, reason=reason, message=message, **extra)
            if not reason:
                condition.pop("reason", None)
            return out
    new = {"type": type_, "status": status, "lastTransitionTime": now_rfc3339(), "message": message, **extra}
    if reason:
        new["reason"] = reason
    out.append(new)
    return out


def condition(obj: dict, type_: str) -> dict | None:
    for item in obj.get("status", {}).get("conditions") or []:
        if item.get("type") == type_:
            return item
    return None


def is_master(node: dict) -> bool:
    return MASTER_LABEL in (node.get("metadata", {}).get("labels") or {})


def node_ready(node: dict) -> bool:
    ready = condition(node, "Ready")
    return ready is not None and ready.get("status") == "True"


def ready_condition(ready: bool, message: str = "") -> dict:
    now = now_rfc3339()
    if ready:
        return {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": message or "kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    return {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": message or "Kubelet stopped posting node status.",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def node_info(node_name: str, kube_minor: int) -> dict:
    """status.nodeInfo with every field the kubernetes client requires."""
    digest = hashlib.sha256(node_name.encode()).hexdigest()
    return {
        "architecture": "amd64",
        "bootID": str(uuid.UUID(digest[:32])),
        "containerRuntimeVersion": "cri-o://1.27.4-sim",
        "kernelVersion": "5.14.0-284.sim.el9_2.x86_64",
        "kubeProxyVersion": f"v1.{kube_minor}.16+sim",
        "kubeletVersion": f"v1.{kube_minor}.16+sim",
        "machineID": digest[32:64],
        "operatingSystem": "linux",
        "osImage": "Red Hat Enterprise Linux CoreOS",
        "systemUUID": str(uuid.UUID(digest[16:48])),
    }
