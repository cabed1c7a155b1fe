"""The simulated API server through the unmodified kubernetes client: discovery, verbs, patches, watch."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from sim.kubeapi import KubeApiServer
from sim.kubeapi.certs import node_csr_pem

from .conftest import EtcdProcess, wait_for


@pytest.fixture(scope="module")
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    name = f"kt-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"purpose": "test"}))
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_discovery_finds_openshift_operator_resources(api_client: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api_client)
    etcds = dyn.resources.get(api_version="operator.openshift.io/v1", kind="Etcd")
    assert etcds.name == "etcds"
    assert etcds.namespaced is False
    etcd = etcds.get(name="cluster")
    assert etcd.status.latestAvailableRevision >= 7
    csr = dyn.resources.get(api_version="certificates.k8s.io/v1", kind="CertificateSigningRequest")
    assert csr.short_names == ["csr"]
    assert "approval" in csr.subresources
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert "scale" in deployments.subresources
    version = client.VersionApi(api_client).get_code()
    assert (version.major, version.minor) == ("1", "27")


def test_seeded_cluster_reads_like_openshift(api_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    cv = custom.get_cluster_custom_object("config.openshift.io", "v1", "clusterversions", "version")
    assert cv["status"]["desired"]["version"] == "4.14.38"
    assert cv["status"]["history"][0]["state"] == "Completed"
    proxy = custom.get_cluster_custom_object("config.openshift.io", "v1", "proxies", "cluster")
    assert not proxy["spec"].get("httpProxy")
    core = client.CoreV1Api(api_client)
    etcd_pods = core.list_namespaced_pod("openshift-etcd", label_selector="k8s-app=etcd").items
    assert len(etcd_pods) == 3
    assert all(pod.status.phase == "Running" for pod in etcd_pods)
    masters = core.list_node(label_selector="node-role.kubernetes.io/master").items
    assert len(masters) == 3
    machines = custom.list_namespaced_custom_object(
        "machine.openshift.io", "v1beta1", "openshift-machine-api", "machines"
    )
    roles = sorted(
        m["metadata"]["labels"]["machine.openshift.io/cluster-api-machine-role"] for m in machines["items"]
    )
    assert roles == ["master", "master", "master", "worker", "worker"]
    webhooks = client.AdmissionregistrationV1Api(api_client).list_validating_webhook_configuration().items
    assert any(hook.webhooks[0].failure_policy == "Fail" for hook in webhooks)
    ovn = core.list_namespaced_pod("openshift-ovn-kubernetes", label_selector="app=ovnkube-node").items
    assert len(ovn) == 5


def test_create_get_update_conflict_delete(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(generate_name="app-", labels={"tier": "web"}), data={"k": "v"}
        ),
    )
    name = created.metadata.name
    assert name.startswith("app-") and len(name) == len("app-") + 5
    assert created.metadata.uid and created.metadata.creation_timestamp and created.metadata.resource_version
    stale = core.read_namespaced_config_map(name, namespace)
    fresh = core.read_namespaced_config_map(name, namespace)
    fresh.data["k"] = "v2"
    updated = core.replace_namespaced_config_map(name, namespace, fresh)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    stale.data["k"] = "lost update"
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map(name, namespace, stale)
    assert conflict.value.status == 409
    assert _status(conflict.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
        )
    assert _status(exists.value)["reason"] == "AlreadyExists"
    core.delete_namespaced_config_map(name, namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map(name, namespace)
    assert missing.value.status == 404
    body = _status(missing.value)
    assert (body["kind"], body["status"], body["reason"]) == ("Status", "Failure", "NotFound")


def test_label_and_field_selectors(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    for index, tier in enumerate(("web", "db", "web")):
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"sel-{index}", labels={"tier": tier, "sel": "yes"})
            ),
        )
    web = core.list_namespaced_config_map(namespace, label_selector="sel=yes,tier=web").items
    assert sorted(cm.metadata.name for cm in web) == ["sel-0", "sel-2"]
    not_web = core.list_namespaced_config_map(namespace, label_selector="sel,tier notin (web)").items
    assert [cm.metadata.name for cm in not_web] == ["sel-1"]
    by_name = core.list_namespaced_config_map(namespace, field_selector="metadata.name=sel-2").items
    assert [cm.metadata.name for cm in by_name] == ["sel-2"]
    node = core.list_node(label_selector="node-role.kubernetes.io/worker").items[0].metadata.name
    on_node = core.list_namespaced_pod(
        "openshift-ovn-kubernetes", label_selector="app=ovnkube-node", field_selector=f"spec.nodeName=={node}"
    ).items
    assert [pod.spec.node_name for pod in on_node] == [node]
    running = core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
    assert running and all(pod.status.phase == "Running" for pod in running)
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod(namespace, field_selector="spec.bogus=1")
    assert bad.value.status == 400


def test_merge_json_and_strategic_patches(api_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app": "patchme"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="patchme"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(name="app", image="app:1"),
                        client.V1Container(name="sidecar", image="sidecar:1"),
                    ]
                ),
            ),
        ),
    )
    apps.create_namespaced_deployment(namespace, deployment)
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "sidecar:2"}]}}}}
    patched = apps.patch_namespaced_deployment("patchme", namespace, strategic)
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"app": "app:1", "sidecar": "sidecar:2"}
    json_patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:2"}]
    patched = apps.patch_namespaced_deployment("patchme", namespace, json_patch)
    assert patched.spec.template.spec.containers[0].image == "app:2"
    custom = client.CustomObjectsApi(api_client)
    merged = custom.patch_cluster_custom_object(
        "config.openshift.io", "v1", "proxies", "cluster", {"spec": {"noProxy": ".internal"}}
    )
    assert merged["spec"]["noProxy"] == ".internal"
    cleared = custom.patch_cluster_custom_object(
        "config.openshift.io", "v1", "proxies", "cluster", {"spec": {"noProxy": None}}
    )
    assert "noProxy" not in cleared["spec"]


def test_finalizers_keep_object_until_removed(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"])),
    )
    core.delete_namespaced_config_map("held", namespace)
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", namespace)
    assert gone.value.status == 404


def test_status_subresource_and_generation(api_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    before = custom.get_cluster_custom_object("operator.openshift.io", "v1", "kubeschedulers", "cluster")
    tampered = dict(before)
    tampered["status"] = {**before["status"], "latestAvailableRevision": 999}
    tampered["spec"] = {**before["spec"], "logLevel": "Debug"}
    after = custom.replace_cluster_custom_object(
        "operator.openshift.io", "v1", "kubeschedulers", "cluster", tampered
    )
    assert after["status"]["latestAvailableRevision"] == before["status"]["latestAvailableRevision"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    custom.patch_cluster_custom_object(
        "operator.openshift.io", "v1", "kubeschedulers", "cluster", {"spec": {"logLevel": "Normal"}}
    )
    core = client.CoreV1Api(api_client)
    node = core.list_node(label_selector="node-role.kubernetes.io/worker").items[0].metadata.name
    patched = core.patch_node_status(node, {"status": {"capacity": {"cpu": "4"}}})
    assert patched.status.capacity == {"cpu": "4"}


def test_scale_subresource(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    scale = apps.read_namespaced_deployment_scale("inventory-web", "inventory")
    assert scale.spec.replicas == 1
    apps.patch_namespaced_deployment_scale("inventory-web", "inventory", {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("inventory-web", "inventory").spec.replicas == 3
    wait_for(
        lambda: apps.read_namespaced_deployment("inventory-web", "inventory").status.ready_replicas == 3,
        what="3 ready replicas",
    )
    pods = (
        client.CoreV1Api(api_client)
        .list_namespaced_pod("inventory", label_selector="app=inventory-web")
        .items
    )
    assert len(pods) == 3


def test_csr_approval_subresource(api_client: client.ApiClient) -> None:
    certs = client.CertificatesV1Api(api_client)
    request = base64.b64encode(node_csr_pem("manual-node", serving=False)).decode()
    csr = certs.create_certificate_signing_request(
        client.V1CertificateSigningRequest(
            metadata=client.V1ObjectMeta(generate_name="csr-"),
            spec=client.V1CertificateSigningRequestSpec(
                request=request,
                signer_name="kubernetes.io/kube-apiserver-client-kubelet",
                usages=["digital signature", "key encipherment", "client auth"],
            ),
        )
    )
    csr.status = client.V1CertificateSigningRequestStatus(
        conditions=[
            client.V1CertificateSigningRequestCondition(
                type="Approved",
                status="True",
                reason="KubectlApprove",
                message="This CSR was approved by kubectl certificate approve.",
            )
        ]
    )
    approved = certs.replace_certificate_signing_request_approval(csr.metadata.name, csr)
    assert [c.type for c in approved.status.conditions] == ["Approved"]
    issued = wait_for(
        lambda: certs.read_certificate_signing_request(csr.metadata.name).status.certificate,
        what="the signer to issue the certificate",
    )
    assert base64.b64decode(issued).startswith(b"-----BEGIN CERTIFICATE-----")


def test_watch_streams_changes(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()

    def consume() -> None:
        for event in stream.stream(
            core.list_namespaced_config_map,
            namespace,
            label_selector="watched=yes",
            resource_version=start,
            timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                stream.stop()

    consumer = threading.Thread(target=consume)
    consumer.start()
    meta = client.V1ObjectMeta(name="w1", labels={"watched": "yes"})
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta, data={"a": "1"}))
    core.patch_namespaced_config_map("w1", namespace, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w1", namespace)
    consumer.join(25)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_wrong_token_gets_401(api_server: KubeApiServer) -> None:
    configuration = client.Configuration()
    configuration.host = api_server.url
    configuration.ssl_ca_cert = str(api_server.ca_path)
    configuration.api_key = {"authorization": "Bearer not-the-token"}
    with client.ApiClient(configuration) as bad_client, pytest.raises(ApiException) as denied:
        client.CoreV1Api(bad_client).list_namespace()
    assert denied.value.status == 401
    assert _status(denied.value)["reason"] == "Unauthorized"


def test_dry_run_changes_nothing(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dry"), data={"a": "1"})
    )
    preview = core.patch_namespaced_config_map("dry", namespace, {"data": {"a": "2"}}, dry_run="All")
    assert preview.data == {"a": "2"}
    core.delete_namespaced_config_map("dry", namespace, dry_run="All")
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dry-new")), dry_run="All"
    )
    assert core.read_namespaced_config_map("dry", namespace).data == {"a": "1"}
    assert [
        cm.metadata.name
        for cm in core.list_namespaced_config_map(namespace, field_selector="metadata.name=dry-new").items
    ] == []


def test_watch_from_a_compacted_revision_gets_410(
    api_client: client.ApiClient, etcd: EtcdProcess, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    old = core.list_namespaced_config_map(namespace).metadata.resource_version
    for name in ("after-1", "after-2"):
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
        )
    current = core.list_namespaced_config_map(namespace).metadata.resource_version
    etcd.etcdctl("compact", current)
    response = core.list_namespaced_config_map(
        namespace, watch=True, resource_version=old, timeout_seconds=5, _preload_content=False
    )
    first = json.loads(response.readline())
    assert first["type"] == "ERROR"
    assert (first["object"]["code"], first["object"]["reason"]) == (410, "Expired")
