"""Server-side printing (meta.k8s.io/v1 Table), so `kubectl get` / `oc get` show the usual columns."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from .resources import ResourceType

Cell = Callable[[dict], object]


def _get(obj: dict, *path: str) -> object:
    value: object = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _age(obj: dict) -> str:
    stamp = _get(obj, "metadata", "creationTimestamp")
    if not isinstance(stamp, str):
        return "<unknown>"
    created = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _condition(obj: dict, type_: str, field: str = "status") -> str:
    for condition in _get(obj, "status", "conditions") or []:  # type: ignore[union-attr]
        if condition.get("type") == type_:
            return str(condition.get(field, ""))
    return ""


def _node_status(node: dict) -> str:
    ready = _condition(node, "Ready")
    status = "Ready" if ready == "True" else "NotReady"
    if _get(node, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(node: dict) -> str:
    labels = _get(node, "metadata", "labels") or {}
    roles = sorted(key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/"))  # type: ignore[union-attr]
    return ",".join(roles) or "<none>"


def _internal_ip(obj: dict) -> str:
    for address in _get(obj, "status", "addresses") or []:  # type: ignore[union-attr]
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return "<none>"


def _pod_ready(pod: dict) -> str:
    statuses = _get(pod, "status", "containerStatuses") or []
    total = len(_get(pod, "spec", "containers") or [])  # type: ignore[arg-type]
    ready = sum(1 for s in statuses if s.get("ready"))  # type: ignore[union-attr]
    return f"{ready}/{total}"


def _pod_status(pod: dict) -> str:
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    return str(_get(pod, "status", "phase") or "Pending")


def _restarts(pod: dict) -> int:
    return sum(int(s.get("restartCount", 0)) for s in _get(pod, "status", "containerStatuses") or [])  # type: ignore[union-attr]


def _csr_condition(csr: dict) -> str:
    conditions = [c.get("type", "") for c in _get(csr, "status", "conditions") or []]  # type: ignore[union-attr]
    if not conditions:
        return "Pending"
    if _get(csr, "status", "certificate"):
        conditions.append("Issued")
    return ",".join(conditions)


def _co_since(obj: dict) -> str:
    stamps = [c.get("lastTransitionTime", "") for c in _get(obj, "status", "conditions") or []]  # type: ignore[union-attr]
    return _age({"metadata": {"creationTimestamp": max(stamps)}}) if stamps else ""


def _ready_of(obj: dict, ready: str, total: Cell) -> str:
    return f"{_get(obj, 'status', ready) or 0}/{total(obj) or 0}"


# (name, type, priority, cell); priority 1 columns show only with -o wide.
Column = tuple[str, str, int, Cell]
NAME: Column = ("Name", "string", 0, lambda o: _get(o, "metadata", "name"))
AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[str, list[Column]] = {
    "nodes": [
        NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        AGE,
        ("Version", "string", 0, lambda o: _get(o, "status", "nodeInfo", "kubeletVersion")),
        ("Internal-IP", "string", 1, _internal_ip),
    ],
    "pods": [
        NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "integer", 0, _restarts),
        AGE,
        ("IP", "string", 1, lambda o: _get(o, "status", "podIP") or "<none>"),
        ("Node", "string", 1, lambda o: _get(o, "spec", "nodeName") or "<none>"),
    ],
    "namespaces": [NAME, ("Status", "string", 0, lambda o: _get(o, "status", "phase")), AGE],
    "certificatesigningrequests": [
        NAME,
        AGE,
        ("SignerName", "string", 0, lambda o: _get(o, "spec", "signerName")),
        ("Requestor", "string", 0, lambda o: _get(o, "spec", "username")),
        ("RequestedDuration", "string", 0, lambda o: "<none>"),
        ("Condition", "string", 0, _csr_condition),
    ],
    "machines": [
        NAME,
        ("Phase", "string", 0, lambda o: _get(o, "status", "phase") or ""),
        ("Type", "string", 0, lambda o: _get(o, "spec", "providerSpec", "value", "instanceType")),
        ("Region", "string", 0, lambda o: _get(o, "spec", "providerSpec", "value", "placement", "region")),
        (
            "Zone",
            "string",
            0,
            lambda o: _get(o, "spec", "providerSpec", "value", "placement", "availabilityZone"),
        ),
        AGE,
        ("Node", "string", 1, lambda o: _get(o, "status", "nodeRef", "name") or ""),
        ("ProviderID", "string", 1, lambda o: _get(o, "spec", "providerID") or ""),
        (
            "State",
            "string",
            1,
            lambda o: (_get(o, "metadata", "annotations") or {}).get(
                "machine.openshift.io/instance-state", ""
            ),  # type: ignore[union-attr]
        ),
    ],
    "clusteroperators": [
        NAME,
        ("Version", "string", 0, lambda o: ((_get(o, "status", "versions") or [{}])[0]).get("version", "")),  # type: ignore[index]
        ("Available", "string", 0, lambda o: _condition(o, "Available")),
        ("Progressing", "string", 0, lambda o: _condition(o, "Progressing")),
        ("Degraded", "string", 0, lambda o: _condition(o, "Degraded")),
        ("Since", "string", 0, _co_since),
        (
            "Message",
            "string",
            0,
            lambda o: (
                _condition(o, "Progressing", "message") if _condition(o, "Progressing") == "True" else ""
            ),
        ),
    ],
    "clusterversions": [
        NAME,
        ("Version", "string", 0, lambda o: _get(o, "status", "desired", "version")),
        ("Available", "string", 0, lambda o: _condition(o, "Available")),
        ("Progressing", "string", 0, lambda o: _condition(o, "Progressing")),
        ("Since", "string", 0, _co_since),
        ("Status", "string", 0, lambda o: _condition(o, "Progressing", "message")),
    ],
    "deployments": [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda o: _ready_of(o, "readyReplicas", lambda x: _get(x, "spec", "replicas")),
        ),
        ("Up-to-date", "integer", 0, lambda o: _get(o, "status", "updatedReplicas") or 0),
        ("Available", "integer", 0, lambda o: _get(o, "status", "availableReplicas") or 0),
        AGE,
    ],
    "daemonsets": [
        NAME,
        ("Desired", "integer", 0, lambda o: _get(o, "status", "desiredNumberScheduled") or 0),
        ("Current", "integer", 0, lambda o: _get(o, "status", "currentNumberScheduled") or 0),
        ("Ready", "integer", 0, lambda o: _get(o, "status", "numberReady") or 0),
        ("Available", "integer", 0, lambda o: _get(o, "status", "numberAvailable") or 0),
        AGE,
    ],
    "persistentvolumeclaims": [
        NAME,
        ("Status", "string", 0, lambda o: _get(o, "status", "phase")),
        ("Volume", "string", 0, lambda o: _get(o, "spec", "volumeName") or ""),
        ("Capacity", "string", 0, lambda o: (_get(o, "status", "capacity") or {}).get("storage", "")),  # type: ignore[union-attr]
        AGE,
    ],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def to_table(res: ResourceType, items: list[dict], resource_version: str, include_object: str) -> dict:
    columns = COLUMNS.get(res.plural, [NAME, AGE])
    rows = []
    for item in items:
        row: dict = {"cells": [cell(item) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = item
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": prio,
            }
            for name, type_, prio, _ in columns
        ],
        "rows": rows,
    }
