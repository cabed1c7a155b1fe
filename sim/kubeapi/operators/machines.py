"""The Machine API on AWS: new Machines go Provisioning → Provisioned → Running and get a Node;
deleted ones go Deleting, lose their Node and disappear."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from ..store import ObjectStore
from .common import MACHINES, NODES, node_info, ready_condition

MACHINE_FINALIZER = "machine.machine.openshift.io"
INSTANCE_STATE = "machine.openshift.io/instance-state"
_NEXT_PHASE = {None: "Provisioning", "Provisioning": "Provisioned", "Provisioned": "Running"}


def _instance_id() -> str:
    return "i-0" + "".join(random.choice("0123456789abcdef") for _ in range(16))


def node_for_machine(machine: dict, address: str) -> dict:
    meta = machine["metadata"]
    role = (meta.get("labels") or {}).get("machine.openshift.io/cluster-api-machine-role", "worker")
    labels = {
        "kubernetes.io/hostname": meta["name"],
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m6i.xlarge",
        f"node-role.kubernetes.io/{role}": "",
    }
    if role == "master":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "metadata": {
            "name": meta["name"],
            "labels": labels,
            "annotations": {"machine.openshift.io/machine": f"{meta['namespace']}/{meta['name']}"},
        },
        "spec": {"providerID": machine["spec"].get("providerID", "")},
        "status": {
            "conditions": [ready_condition(True)],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": meta["name"]},
            ],
            "nodeInfo": node_info(meta["name"], 27),
        },
    }


class MachineController:
    def __init__(
        self,
        store: ObjectStore,
        step_seconds: float,
        *,
        replace_deleted_masters: bool = False,
        adopt_host: Callable[[dict], tuple[str, str] | None] | None = None,
    ) -> None:
        self.store = store
        self.step_seconds = step_seconds
        # The twin gives a new control-plane Machine a free host: (node name, address), or None while
        # there is none. That host's kubelet then registers the Node.
        self.adopt_host = adopt_host
        # What a ControlPlaneMachineSet does; off by default because the 4.12-4.17 runbook has the
        # operator create the replacement by hand (step 10), and both would make four masters.
        self.replace_deleted_masters = replace_deleted_masters
        self._since: dict[str, float] = {}

    def reconcile(self) -> None:
        now = time.monotonic()
        for machine in self.store.list(MACHINES)[0]:
            meta = machine["metadata"]
            uid = meta["uid"]
            phase = machine.get("status", {}).get("phase")
            if meta.get("deletionTimestamp"):
                self._delete_step(machine, now)
                continue
            if phase in ("Running", "Failed"):
                self._since.pop(uid, None)
                continue
            started = self._since.setdefault(uid, now)
            if phase is not None and now - started < self.step_seconds:
                continue
            self._since[uid] = now
            self._advance(machine, _NEXT_PHASE[phase])

    def _advance(self, machine: dict, phase: str) -> None:
        meta = machine["metadata"]
        address = f"10.0.{random.randint(16, 127)}.{random.randint(2, 254)}"
        node_name = meta["name"]
        role = (meta.get("labels") or {}).get("machine.openshift.io/cluster-api-machine-role")
        host = None
        if self.adopt_host is not None and role == "master" and phase in ("Provisioned", "Running"):
            host = self.adopt_host(machine)
            if host is None:
                return
            node_name, address = host

        def change(current: dict) -> dict:
            status = current.setdefault("status", {})
            status["phase"] = phase
            current["metadata"].setdefault("finalizers", [MACHINE_FINALIZER])
            annotations = current["metadata"].setdefault("annotations", {})
            if phase == "Provisioning":
                annotations[INSTANCE_STATE] = "pending"
                status["providerStatus"] = {"instanceState": "pending"}
            elif phase == "Provisioned":
                zone = current["spec"].get("providerSpec", {}).get("value", {}).get("placement", {})
                current["spec"]["providerID"] = (
                    f"aws:///{zone.get('availabilityZone', 'us-east-1a')}/{_instance_id()}"
                )
                status["addresses"] = [
                    {"type": "InternalIP", "address": address},
                    {"type": "InternalDNS", "address": node_name},
                ]
                annotations[INSTANCE_STATE] = "running"
                status["providerStatus"] = {"instanceState": "running"}
            else:
                status["nodeRef"] = {"kind": "Node", "name": node_name}
            return current

        updated = self.store.modify(MACHINES, meta["namespace"], meta["name"], change)
        if host is None and phase == "Running" and self.store.try_get(NODES, None, meta["name"]) is None:
            ip = next(
                (a["address"] for a in updated["status"].get("addresses", []) if a["type"] == "InternalIP"),
                address,
            )
            self.store.create(NODES, None, node_for_machine(updated, ip))

    def _delete_step(self, machine: dict, now: float) -> None:
        meta = machine["metadata"]
        uid = meta["uid"]
        if machine.get("status", {}).get("phase") != "Deleting":

            def deleting(current: dict) -> dict:
                current.setdefault("status", {})["phase"] = "Deleting"
                return current

            self.store.modify(MACHINES, meta["namespace"], meta["name"], deleting)
            self._since[uid] = now
            return
        if now - self._since.setdefault(uid, now) < self.step_seconds:
            return
        node_name = machine.get("status", {}).get("nodeRef", {}).get("name")
        if node_name and self.store.try_get(NODES, None, node_name) is not None:
            self.store.delete(NODES, None, node_name)

        def release(current: dict) -> dict:
            current["metadata"]["finalizers"] = [
                f for f in current["metadata"].get("finalizers", []) if f != MACHINE_FINALIZER
            ]
            return current

        self.store.modify(MACHINES, meta["namespace"], meta["name"], release)
        self._since.pop(uid, None)
        role = (meta.get("labels") or {}).get("machine.openshift.io/cluster-api-machine-role")
        if self.replace_deleted_masters and role == "master":
            self.store.create(
                MACHINES, meta["namespace"], replacement_machine(machine, self._next_master_name(meta))
            )

    def _next_master_name(self, meta: dict) -> str:
        """The next free index, as the runbook says: ...-master-0 is replaced by ...-master-3."""
        stem = meta["name"].rsplit("-", 1)[0]
        taken = {m["metadata"]["name"] for m in self.store.list(MACHINES, meta["namespace"])[0]}
        index = 3
        while f"{stem}-{index}" in taken:
            index += 1
        return f"{stem}-{index}"


def replacement_machine(old: dict, name: str) -> dict:
    """The edit the runbook asks for: no status, providerID, annotations, generation, rv or uid."""
    meta = old["metadata"]
    spec = {key: value for key, value in old.get("spec", {}).items() if key != "providerID"}
    return {
        "apiVersion": old["apiVersion"],
        "kind": old["kind"],
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": dict(meta.get("labels") or {})},
        "spec": spec,
    }
