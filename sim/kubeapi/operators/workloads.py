"""Workload controllers and the pods' kubelets: DaemonSets, Deployments and StatefulSets keep their pods,
pods on Ready nodes start Running, and terminating namespaces are emptied."""

from __future__ import annotations

import copy
import hashlib
import time

from ..errors import ApiError
from ..resources import ResourceType
from ..store import ObjectStore, now_rfc3339, random_suffix
from .common import CLAIMS, DAEMONSETS, DEPLOYMENTS, NAMESPACES, NODES, PODS, STATEFULSETS, node_ready

PVC_PROTECTION = "kubernetes.io/pvc-protection"
WORKLOAD_KINDS = ("DaemonSet", "Deployment", "StatefulSet")


def _matches(labels: dict, selector: dict) -> bool:
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def _owned(pods: list[dict], owner: dict) -> list[dict]:
    uid = owner["metadata"]["uid"]
    return [
        pod
        for pod in pods
        if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])
        and not pod["metadata"].get("deletionTimestamp")
    ]


def _pod_from_template(owner: dict, name: str, node_name: str | None) -> dict:
    template = copy.deepcopy(owner["spec"].get("template") or {})
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {"containers": [{"name": "main", "image": "registry.local/app:1"}]}
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def _running_status(pod: dict) -> dict:
    stamp = now_rfc3339()
    containers = pod["spec"].get("containers") or []
    # A stable address per pod inside the seeded cluster network 10.128.0.0/14.
    digest = hashlib.sha256(pod["metadata"]["uid"].encode()).digest()
    return {
        "phase": "Running",
        "startTime": stamp,
        "podIP": f"10.{128 + digest[0] % 4}.{digest[1]}.{2 + digest[2] % 250}",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": stamp}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": c.get("image", ""),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "containerID": "cri-o://"
                + hashlib.sha256(f"{pod['metadata']['uid']}{c['name']}".encode()).hexdigest(),
                "state": {"running": {"startedAt": stamp}},
            }
            for c in containers
        ],
    }


class WorkloadController:
    def __init__(self, store: ObjectStore, pod_start_seconds: float) -> None:
        self.store = store
        self.pod_start_seconds = pod_start_seconds
        self._pending_since: dict[str, float] = {}

    def reconcile(self) -> None:
        for ns in self.store.list(NAMESPACES)[0]:
            if ns["metadata"].get("deletionTimestamp"):
                self.store.finish_namespace(ns["metadata"]["name"])
        self._release_claims()
        nodes = self.store.list(NODES)[0]
        pods = self.store.list(PODS)[0]
        daemonsets = self.store.list(DAEMONSETS)[0]
        for ds in daemonsets:
            self._daemonset(ds, nodes, pods)
        deployments = self.store.list(DEPLOYMENTS)[0]
        for deploy in deployments:
            self._replicas(DEPLOYMENTS, deploy, pods, nodes, stateful=False)
        statefulsets = self.store.list(STATEFULSETS)[0]
        for sts in statefulsets:
            self._replicas(STATEFULSETS, sts, pods, nodes, stateful=True)
        owners = {o["metadata"]["uid"] for o in (*daemonsets, *deployments, *statefulsets)}
        self._collect_orphans(pods, owners)
        self._kubelets(self.store.list(PODS)[0], nodes)

    def _release_claims(self) -> None:
        """The pvc-protection controller: a deleted claim goes once no pod holds it (no pod here does)."""
        for claim in self.store.list(CLAIMS)[0]:
            meta = claim["metadata"]
            if not meta.get("deletionTimestamp") or PVC_PROTECTION not in (meta.get("finalizers") or []):
                continue

            def release(current: dict) -> dict:
                current["metadata"]["finalizers"] = [
                    f for f in current["metadata"].get("finalizers") or [] if f != PVC_PROTECTION
                ]
                return current

            try:
                self.store.modify(CLAIMS, meta["namespace"], meta["name"], release)
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _collect_orphans(self, pods: list[dict], owners: set[str]) -> None:
        """The garbage collector: pods whose controlling workload is gone are deleted with it."""
        for pod in pods:
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
            if refs and refs[0].get("kind") in WORKLOAD_KINDS and refs[0].get("uid") not in owners:
                try:
                    self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise

    def _create_pod(self, pod: dict) -> None:
        try:
            self.store.create(PODS, pod["metadata"]["namespace"], pod)
        except ApiError as exc:
            if exc.code not in (403, 404, 409):
                raise

    def _daemonset(self, ds: dict, nodes: list[dict], pods: list[dict]) -> None:
        if ds["metadata"].get("deletionTimestamp"):
            return
        node_selector = ds["spec"].get("template", {}).get("spec", {}).get("nodeSelector") or {}
        wanted = [
            n["metadata"]["name"]
            for n in nodes
            if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in node_selector.items())
        ]
        owned = _owned(pods, ds)
        by_node = {pod["spec"].get("nodeName"): pod for pod in owned}
        for node_name in wanted:
            if node_name not in by_node:
                self._create_pod(
                    _pod_from_template(ds, f"{ds['metadata']['name']}-{random_suffix()}", node_name)
                )
        for pod in owned:
            if pod["spec"].get("nodeName") not in wanted:
                self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        ready = sum(1 for pod in owned if pod.get("status", {}).get("phase") == "Running")
        self._write_status(
            DAEMONSETS,
            ds,
            {
                "desiredNumberScheduled": len(wanted),
                "currentNumberScheduled": len([n for n in wanted if n in by_node]),
                "numberReady": ready,
                "numberAvailable": ready,
                "updatedNumberScheduled": len(owned),
                "numberMisscheduled": 0,
            },
        )

    def _replicas(
        self, res: ResourceType, owner: dict, pods: list[dict], nodes: list[dict], *, stateful: bool
    ) -> None:
        if owner["metadata"].get("deletionTimestamp"):
            return
        want = int(owner["spec"].get("replicas", 1))
        owned = sorted(_owned(pods, owner), key=lambda p: p["metadata"]["name"])
        name = owner["metadata"]["name"]
        selector = owner["spec"].get("template", {}).get("spec", {}).get("nodeSelector") or {
            "node-role.kubernetes.io/worker": ""
        }
        workers = [
            n["metadata"]["name"]
            for n in nodes
            if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        ] or [n["metadata"]["name"] for n in nodes]
        template_hash = hashlib.sha256(repr(owner["spec"].get("template")).encode()).hexdigest()[:10]
        existing = {p["metadata"]["name"] for p in owned}
        for index in range(len(owned), want):
            pod_name = f"{name}-{index}" if stateful else f"{name}-{template_hash}-{random_suffix()}"
            if pod_name in existing:
                continue
            node = workers[index % len(workers)] if workers else None
            self._create_pod(_pod_from_template(owner, pod_name, node))
        for pod in owned[want:]:
            self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        ready = sum(1 for pod in owned[:want] if pod.get("status", {}).get("phase") == "Running")
        status = {
            "replicas": min(len(owned), want) if owned else 0,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if stateful:
            status["currentReplicas"] = status["replicas"]
        else:
            status["updatedReplicas"] = status["replicas"]
            status["conditions"] = [
                {
                    "type": "Available",
                    "status": "True" if ready >= want else "False",
                    "reason": "MinimumReplicasAvailable" if ready >= want else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if ready >= want
                    else "Deployment does not have minimum availability.",
                }
            ]
        self._write_status(res, owner, status)

    def _write_status(self, res: ResourceType, owner: dict, fields: dict) -> None:
        status = {
            **(owner.get("status") or {}),
            **fields,
            "observedGeneration": owner["metadata"].get("generation", 1),
        }
        old = owner.get("status") or {}
        if "conditions" in fields and "conditions" in old:
            # Keep transition times stable so an unchanged status is not rewritten every tick.
            stable = {c["type"]: c for c in old["conditions"]}
            status["conditions"] = [
                {
                    **c,
                    "lastTransitionTime": stable.get(c["type"], {}).get("lastTransitionTime", now_rfc3339()),
                }
                if stable.get(c["type"], {}).get("status") == c["status"]
                else {**c, "lastTransitionTime": now_rfc3339()}
                for c in fields["conditions"]
            ]
        elif "conditions" in fields:
            status["conditions"] = [{**c, "lastTransitionTime": now_rfc3339()} for c in fields["conditions"]]
        if status == old:
            return

        def change(current: dict) -> dict:
            current["status"] = status
            return current

        meta = owner["metadata"]
        try:
            self.store.modify(res, meta.get("namespace"), meta["name"], change)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _kubelets(self, pods: list[dict], nodes: list[dict]) -> None:
        ready_nodes = {n["metadata"]["name"] for n in nodes if node_ready(n)}
        now = time.monotonic()
        for pod in pods:
            meta = pod["metadata"]
            if pod.get("status", {}).get("phase") != "Pending" or meta.get("deletionTimestamp"):
                self._pending_since.pop(meta["uid"], None)
                continue
            if pod["spec"].get("nodeName") not in ready_nodes:
                continue
            since = self._pending_since.setdefault(meta["uid"], now)
            if now - since < self.pod_start_seconds:
                continue

            def start(current: dict) -> dict:
                current["status"] = _running_status(current)
                return current

            try:
                self.store.modify(PODS, meta["namespace"], meta["name"], start)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            self._pending_since.pop(meta["uid"], None)
