"""The simulated operators, driven the way the restore runbook drives a real cluster."""

from __future__ import annotations

import base64
import copy
import json
import time

from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client

from sim.kubeapi import KubeApiServer

from .conftest import MASTERS, wait_for

OPERATOR = ("operator.openshift.io", "v1")


def _installer_condition(obj: dict) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "NodeInstallerProgressing")


def test_force_redeployment_rolls_a_new_revision_node_by_node(api_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    before = custom.get_cluster_custom_object(*OPERATOR, "etcds", "cluster")
    latest = before["status"]["latestAvailableRevision"] + 1
    custom.patch_cluster_custom_object(
        *OPERATOR, "etcds", "cluster", {"spec": {"forceRedeploymentReason": "recovery-2026-11-29 10:00:00"}}
    )
    messages: set[str] = set()

    def settled() -> dict | None:
        etcd = custom.get_cluster_custom_object(*OPERATOR, "etcds", "cluster")
        condition = _installer_condition(etcd)
        messages.add(condition["message"])
        return (
            etcd
            if condition.get("reason") == "AllNodesAtLatestRevision"
            and etcd["status"]["latestAvailableRevision"] == latest
            else None
        )

    etcd = wait_for(settled, what="all nodes at the new revision")
    assert isinstance(etcd, dict)
    assert _installer_condition(etcd)["status"] == "False"
    assert _installer_condition(etcd)["message"] == f"3 nodes are at revision {latest}"
    assert {s["currentRevision"] for s in etcd["status"]["nodeStatuses"]} == {latest}
    mixed = f"2 nodes are at revision {latest - 1}; 1 nodes are at revision {latest}"
    assert mixed in messages
    pod_cm = client.CoreV1Api(api_client).read_namespaced_config_map("etcd-pod", "openshift-etcd")
    assert pod_cm.data["forceRedeploymentReason"] == "recovery-2026-11-29 10:00:00"


def test_quorum_guard_toggle_is_recorded(api_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    overrides = {"useUnsupportedUnsafeNonHANonProductionUnstableEtcd": True}
    custom.patch_cluster_custom_object(
        *OPERATOR, "etcds", "cluster", {"spec": {"unsupportedConfigOverrides": overrides}}
    )

    def guard(status: str) -> bool:
        etcd = custom.get_cluster_custom_object(*OPERATOR, "etcds", "cluster")
        return any(
            c["type"] == "EtcdQuorumGuardDisabled" and c["status"] == status
            for c in etcd["status"]["conditions"]
        )

    wait_for(lambda: guard("True"), what="the quorum guard to be recorded as disabled")
    custom.patch_cluster_custom_object(
        *OPERATOR, "etcds", "cluster", {"spec": {"unsupportedConfigOverrides": None}}
    )
    wait_for(lambda: guard("False"), what="the quorum guard to be recorded as enabled")


def test_bootstrap_csr_approval_brings_node_back(
    api_server: KubeApiServer, api_client: client.ApiClient
) -> None:
    node = MASTERS[1].name
    # The twin calls this over HTTP when a kubelet restarts with an empty /var/lib/kubelet/pki.
    response = api_client.call_api(
        f"/sim/v1/nodes/{node}/bootstrap-csr", "POST", auth_settings=["BearerToken"], _preload_content=False
    )
    csr_name = json.loads(response.data)["csr"]
    core = client.CoreV1Api(api_client)
    certs = client.CertificatesV1Api(api_client)
    ready = next(c for c in core.read_node(node).status.conditions if c.type == "Ready")
    assert ready.status != "True"
    csr = certs.read_certificate_signing_request(csr_name)
    assert csr.spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet"
    assert csr.spec.username == "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
    request = x509.load_pem_x509_csr(base64.b64decode(csr.spec.request))
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"system:node:{node}"
    assert request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    assert csr.status.conditions is None

    approval = copy.deepcopy(csr)
    approval.status.conditions = [
        client.V1CertificateSigningRequestCondition(type="Approved", status="True", reason="KubectlApprove")
    ]
    certs.replace_certificate_signing_request_approval(csr_name, approval)

    def serving_csr() -> client.V1CertificateSigningRequest | None:
        for item in certs.list_certificate_signing_request().items:
            if (
                item.spec.username == f"system:node:{node}"
                and item.spec.signer_name == "kubernetes.io/kubelet-serving"
            ):
                return item
        return None

    serving = wait_for(serving_csr, what="the kubelet-serving CSR")
    assert isinstance(serving, client.V1CertificateSigningRequest)
    assert "server auth" in serving.spec.usages
    sans = x509.load_pem_x509_csr(base64.b64decode(serving.spec.request)).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert node in sans.value.get_values_for_type(x509.DNSName)

    def node_ready() -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in core.read_node(node).status.conditions)

    wait_for(node_ready, what="the node to be Ready after the serving CSR was auto-approved")
    approved = certs.read_certificate_signing_request(serving.metadata.name)
    assert approved.status.conditions[0].reason == "NodeCSRApprove"
    assert approved.status.certificate


def test_user_provisioned_serving_csr_waits_for_a_human(
    api_server: KubeApiServer, api_client: client.ApiClient
) -> None:
    certs = client.CertificatesV1Api(api_client)
    core = client.CoreV1Api(api_client)
    node = core.list_node(label_selector="node-role.kubernetes.io/worker").items[0].metadata.name
    api_server.operators.csr.auto_approve_serving = False
    try:
        bootstrap = api_server.file_bootstrap_csr(node)
        body = certs.read_certificate_signing_request(bootstrap)
        body.status.conditions = [client.V1CertificateSigningRequestCondition(type="Approved", status="True")]
        certs.replace_certificate_signing_request_approval(bootstrap, body)

        def serving() -> client.V1CertificateSigningRequest | None:
            return next(
                (
                    c
                    for c in certs.list_certificate_signing_request().items
                    if c.spec.username == f"system:node:{node}" and c.status.conditions is None
                ),
                None,
            )

        pending = wait_for(serving, what="the pending kubelet-serving CSR")
        assert isinstance(pending, client.V1CertificateSigningRequest)
        # Twice the IPI auto-approval delay: on UPI nobody approves it but a human.
        time.sleep(2 * api_server.operators.timing.csr_auto_approve)
        assert certs.read_certificate_signing_request(pending.metadata.name).status.conditions is None
        assert not any(
            c.type == "Ready" and c.status == "True" for c in core.read_node(node).status.conditions
        )
        pending.status.conditions = [
            client.V1CertificateSigningRequestCondition(type="Approved", status="True")
        ]
        certs.replace_certificate_signing_request_approval(pending.metadata.name, pending)
        wait_for(
            lambda: any(
                c.type == "Ready" and c.status == "True" for c in core.read_node(node).status.conditions
            ),
            what="the node to be Ready after a human approved its serving CSR",
        )
    finally:
        api_server.operators.csr.auto_approve_serving = True


def test_deleted_master_machine_is_replaced_by_a_new_one(api_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    group = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machines")
    old = custom.get_namespaced_custom_object(*group, "twin-x7k2p-master-2")
    lost_node = old["status"]["nodeRef"]["name"]
    new = copy.deepcopy(old)
    new.pop("status")
    new["spec"].pop("providerID")
    for field in ("annotations", "generation", "resourceVersion", "uid", "creationTimestamp", "finalizers"):
        new["metadata"].pop(field, None)
    new["metadata"]["name"] = "twin-x7k2p-master-3"
    custom.delete_namespaced_custom_object(*group, "twin-x7k2p-master-2")
    core = client.CoreV1Api(api_client)

    def machine_gone() -> bool:
        names = [m["metadata"]["name"] for m in custom.list_namespaced_custom_object(*group)["items"]]
        return "twin-x7k2p-master-2" not in names

    wait_for(machine_gone, what="the old machine to be deleted")
    assert lost_node not in [n.metadata.name for n in core.list_node().items]
    custom.create_namespaced_custom_object(*group, new)
    phases: list[str] = []

    def running() -> bool:
        phase = (
            custom.get_namespaced_custom_object(*group, "twin-x7k2p-master-3").get("status", {}).get("phase")
        )
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
        return phase == "Running"

    wait_for(running, what="the new machine to be Running")
    assert phases == ["Provisioning", "Provisioned", "Running"]
    machine = custom.get_namespaced_custom_object(*group, "twin-x7k2p-master-3")
    assert machine["spec"]["providerID"].startswith("aws:///")
    assert core.read_node("twin-x7k2p-master-3").metadata.labels["node-role.kubernetes.io/master"] == ""

    def etcd_tracks_new_node() -> bool:
        etcd = custom.get_cluster_custom_object(*OPERATOR, "etcds", "cluster")
        names = {s["nodeName"] for s in etcd["status"]["nodeStatuses"]}
        return "twin-x7k2p-master-3" in names and lost_node not in names

    wait_for(etcd_tracks_new_node, what="the etcd operator to track the new control-plane node")


def test_deleted_ovnkube_node_pod_is_recreated(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    node = MASTERS[0].name
    selector = {"label_selector": "app=ovnkube-node", "field_selector": f"spec.nodeName=={node}"}
    old = core.list_namespaced_pod("openshift-ovn-kubernetes", **selector).items
    assert len(old) == 1
    core.delete_namespaced_pod(old[0].metadata.name, "openshift-ovn-kubernetes")

    def replaced() -> bool:
        pods = core.list_namespaced_pod("openshift-ovn-kubernetes", **selector).items
        return (
            len(pods) == 1
            and pods[0].metadata.name != old[0].metadata.name
            and pods[0].status.phase == "Running"
        )

    wait_for(replaced, what="a new Running ovnkube-node pod on the node")


def test_node_ready_hook(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    node = MASTERS[1].name

    def post_ready(ready: bool) -> None:
        api_client.call_api(
            f"/sim/v1/nodes/{node}/ready",
            "POST",
            body={"ready": ready},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )

    def ready_status() -> str:
        return next(c.status for c in core.read_node(node).status.conditions if c.type == "Ready")

    post_ready(False)
    assert ready_status() == "Unknown"
    post_ready(True)
    assert ready_status() == "True"


def test_deleting_a_deployment_collects_its_pods(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    assert core.list_namespaced_pod("inventory", label_selector="app=inventory-web").items
    apps.delete_namespaced_deployment("inventory-web", "inventory")
    wait_for(
        lambda: not core.list_namespaced_pod("inventory", label_selector="app=inventory-web").items,
        what="the deployment's pods to be garbage-collected",
    )


def test_control_plane_machine_set_mode_replaces_a_deleted_master(
    api_server: KubeApiServer, api_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api_client)
    group = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machines")
    before = {m["metadata"]["name"] for m in custom.list_namespaced_custom_object(*group)["items"]}
    api_server.operators.machines.replace_deleted_masters = True
    try:
        custom.delete_namespaced_custom_object(*group, "twin-x7k2p-master-0")

        def replacement() -> dict | None:
            items = custom.list_namespaced_custom_object(*group)["items"]
            new = [m for m in items if m["metadata"]["name"] not in before]
            running = [m for m in new if m.get("status", {}).get("phase") == "Running"]
            names = {m["metadata"]["name"] for m in items}
            return running[0] if running and "twin-x7k2p-master-0" not in names else None

        machine = wait_for(replacement, what="a Running replacement for the deleted master")
    finally:
        api_server.operators.machines.replace_deleted_masters = False
    assert isinstance(machine, dict)
    assert machine["metadata"]["name"] == "twin-x7k2p-master-4"
    assert machine["metadata"]["labels"]["machine.openshift.io/cluster-api-machine-role"] == "master"
