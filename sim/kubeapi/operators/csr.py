"""The CSR lifecycle of a kubelet that lost its certificates.

bootstrap CSR (node-bootstrapper) → approved by a human → signed → the kubelet files a serving CSR as
system:node:NAME → approved (automatically on installer-provisioned clusters, by
cluster-machine-approver) → signed → the node is Ready again.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from ..certs import CertPair, csr_common_name, node_csr_pem, sign_csr
from ..errors import ApiError
from ..store import ObjectStore, now_rfc3339
from .common import CSRS, NODES, condition, ready_condition

BOOTSTRAP_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
FORGED_REQUESTOR = "system:serviceaccount:default:builder"
UNKNOWN_NODE = "ip-10-0-66-6.ec2.internal"


def bootstrap_csr(node_name: str, request: bytes | None = None, username: str = BOOTSTRAPPER) -> dict:
    request = request or node_csr_pem(node_name, serving=False)
    groups = (
        ["system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator"]
        if username == BOOTSTRAPPER
        else ["system:serviceaccounts", f"system:serviceaccounts:{username.split(':')[2]}"]
    )
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64.b64encode(request).decode(),
            "signerName": BOOTSTRAP_SIGNER,
            "usages": ["digital signature", "key encipherment", "client auth"],
            "username": username,
            "groups": [*groups, "system:authenticated"],
        },
    }


def serving_csr(node_name: str, addresses: list[str], request: bytes | None = None) -> dict:
    request = request or node_csr_pem(node_name, serving=True, addresses=addresses)
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64.b64encode(request).decode(),
            "signerName": SERVING_SIGNER,
            "usages": ["digital signature", "key encipherment", "server auth"],
            "username": f"system:node:{node_name}",
            "groups": ["system:nodes", "system:authenticated"],
        },
    }


def is_approved(csr: dict) -> bool:
    approved = condition(csr, "Approved")
    return approved is not None and approved.get("status") == "True" and condition(csr, "Denied") is None


def is_pending(csr: dict) -> bool:
    return condition(csr, "Approved") is None and condition(csr, "Denied") is None


def node_name_of(csr: dict) -> str:
    common_name = csr_common_name(base64.b64decode(csr["spec"]["request"]))
    return common_name.removeprefix("system:node:")


class CsrController:
    def __init__(
        self,
        store: ObjectStore,
        ca: Callable[[], CertPair | None],
        *,
        auto_approve_serving: bool,
        approve_delay: float,
        host_managed: Callable[[str], bool] = lambda _node: False,
    ) -> None:
        # Nodes backed by a twin host: their kubelet (the twin's node agent) files the serving CSR
        # itself and decides when the node is Ready.
        self.host_managed = host_managed
        self.store = store
        self.ca = ca
        self.auto_approve_serving = auto_approve_serving
        self.approve_delay = approve_delay
        self._first_seen: dict[str, float] = {}

    def file_bootstrap(self, node_name: str) -> str:
        self.store.get(NODES, None, node_name)
        self.set_ready(node_name, False)
        return self.store.create(CSRS, None, bootstrap_csr(node_name))["metadata"]["name"]

    def file_forged(self, kind: str) -> str:
        """A CSR an approver must refuse: `wrong-requestor` (a bootstrap CSR for a real node filed by
        some other service account) or `unknown-node` (a proper one for a node that does not exist)."""
        if kind == "wrong-requestor":
            node = next(iter(self.store.list(NODES)[0]), None)
            if node is None:
                raise ApiError(409, "Conflict", "no node to forge a CSR for")
            body = bootstrap_csr(node["metadata"]["name"], username=FORGED_REQUESTOR)
        elif kind == "unknown-node":
            body = bootstrap_csr(UNKNOWN_NODE)
        else:
            raise ApiError(
                400, "BadRequest", f"forged CSR kind {kind!r}: use wrong-requestor or unknown-node"
            )
        return self.store.create(CSRS, None, body)["metadata"]["name"]

    def set_ready(self, node_name: str, ready: bool, message: str = "") -> None:
        def change(node: dict) -> dict:
            conditions = [
                c for c in node.get("status", {}).get("conditions") or [] if c.get("type") != "Ready"
            ]
            old = condition(node, "Ready")
            new = ready_condition(ready, message)
            if old is not None and old.get("status") == new["status"]:
                new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
            node.setdefault("status", {})["conditions"] = [*conditions, new]
            return node

        self.store.modify(NODES, None, node_name, change)

    def reconcile(self) -> None:
        now = time.monotonic()
        for csr in self.store.list(CSRS)[0]:
            name = csr["metadata"]["name"]
            if is_pending(csr):
                first = self._first_seen.setdefault(csr["metadata"]["uid"], now)
                if self._auto_approvable(csr) and now - first >= self.approve_delay:
                    self._approve(name)
            elif is_approved(csr) and not csr.get("status", {}).get("certificate"):
                self._issue(csr)

    def _auto_approvable(self, csr: dict) -> bool:
        return self.auto_approve_serving and csr["spec"].get("signerName") == SERVING_SIGNER

    def _approve(self, name: str) -> None:
        def change(csr: dict) -> dict:
            stamp = now_rfc3339()
            conditions = csr.setdefault("status", {}).setdefault("conditions", [])
            conditions.append(
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "NodeCSRApprove",
                    "message": "This CSR was approved by the Node CSR Approver (cluster-machine-approver)",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                }
            )
            return csr

        self.store.modify(CSRS, None, name, change)

    def _issue(self, csr: dict) -> None:
        ca = self.ca()
        if ca is None:
            return
        signer = csr["spec"].get("signerName")
        serving = signer == SERVING_SIGNER
        pem = sign_csr(ca, base64.b64decode(csr["spec"]["request"]), server=serving)

        def change(current: dict) -> dict:
            current.setdefault("status", {})["certificate"] = base64.b64encode(pem).decode()
            return current

        self.store.modify(CSRS, None, csr["metadata"]["name"], change)
        node_name = node_name_of(csr)
        node = self.store.try_get(NODES, None, node_name)
        if node is None or self.host_managed(node_name):
            return
        if signer == BOOTSTRAP_SIGNER:
            addresses = [
                a["address"] for a in node.get("status", {}).get("addresses") or [] if "address" in a
            ]
            try:
                self.store.create(CSRS, None, serving_csr(node_name, addresses))
            except ApiError:
                return
        elif serving:
            self.set_ready(node_name, True)
