"""The cluster network operator's view of the OVN-Kubernetes control plane (4.12/4.13, central
ovnkube-master): the DaemonSet's database addresses list every control-plane node's InternalIP, so
a deleted node's address leaves it, and a returning node's comes back."""

from __future__ import annotations

from ..errors import ApiError
from ..store import ObjectStore
from .common import DAEMONSETS, NODES, is_master

NAMESPACE = "openshift-ovn-kubernetes"
MASTER_DAEMONSET = "ovnkube-master"


def master_ips(nodes: list[dict]) -> list[str]:
    ips = []
    for node in nodes:
        if not is_master(node) or node["metadata"].get("deletionTimestamp"):
            continue
        for address in node.get("status", {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                ips.append(address["address"])
    return sorted(ips)


def database_env(ips: list[str]) -> list[dict]:
    return [
        {"name": "OVN_NB_DB_LIST", "value": ",".join(f"ssl:{ip}:9641" for ip in ips)},
        {"name": "OVN_SB_DB_LIST", "value": ",".join(f"ssl:{ip}:9642" for ip in ips)},
    ]


class NetworkController:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def reconcile(self) -> None:
        try:
            ds = self.store.get(DAEMONSETS, NAMESPACE, MASTER_DAEMONSET)
        except ApiError as exc:
            if exc.code == 404:
                return  # 4.14+: OVN interconnect has no central databases
            raise
        wanted = database_env(master_ips(self.store.list(NODES)[0]))
        containers = ds["spec"]["template"]["spec"].get("containers") or []
        if all(_db_env(c) == wanted for c in containers):
            return

        def change(current: dict) -> dict:
            for container in current["spec"]["template"]["spec"].get("containers") or []:
                others = [e for e in container.get("env") or [] if not e["name"].startswith("OVN_")]
                container["env"] = [*others, *wanted]
            current["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
            return current

        self.store.modify(DAEMONSETS, NAMESPACE, MASTER_DAEMONSET, change)


def _db_env(container: dict) -> list[dict]:
    return [e for e in container.get("env") or [] if e["name"] in ("OVN_NB_DB_LIST", "OVN_SB_DB_LIST")]
