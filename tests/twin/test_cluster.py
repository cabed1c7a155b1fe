"""One cluster: the twin's API server agrees with its hosts (kubelets, static pods, machines, OVN)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import yaml
from cryptography import x509
from kubernetes.client import ApiClient, CertificatesV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from sim.twin import disasters, lifecycle
from sim.twin.layout import TwinSpec
from tests.twin.conftest import approve, kube, own_twin, pending_csrs, ready, ssh, wait_for

pytestmark = pytest.mark.twin

BOOTSTRAP = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING = "kubernetes.io/kubelet-serving"
BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
RECOVERY_KUBECONFIG = (
    "/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/"
    "localhost-recovery.kubeconfig"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSpec]:
    with own_twin(tmp_path_factory.mktemp("cluster")) as spec:
        yield spec


@pytest.fixture(scope="module")
def api(cluster: TwinSpec) -> ApiClient:
    return kube(cluster)


def test_api_serves_the_hosts_as_nodes_through_dir_kubeconfig(cluster: TwinSpec, api: ApiClient) -> None:
    nodes = {n.metadata.name: n for n in CoreV1Api(api).list_node().items}
    for host in cluster.hosts:
        addresses = [a.address for a in nodes[host.name].status.addresses if a.type == "InternalIP"]
        assert addresses == [host.address]
    assert len(nodes) == len(cluster.hosts) + 2
    etcd = CustomObjectsApi(api).get_cluster_custom_object("operator.openshift.io", "v1", "etcds", "cluster")
    assert etcd["status"]["latestAvailableRevision"] == 2
    clusters = yaml.safe_load((cluster.dir / "clusters.yaml").read_text())["clusters"][0]
    assert clusters["kubeconfig"] == str(cluster.dir / "kubeconfig")
    assert clusters["platform"] == "installer-provisioned"
    url, state = lifecycle.api_status(cluster.dir)
    assert (url, state) == (f"https://{cluster.api_vip}:6443", "up")


def test_the_recovery_kubeconfig_on_a_host_reaches_the_api(cluster: TwinSpec) -> None:
    text = ssh(cluster, cluster.hosts[1], f"sudo cat {RECOVERY_KUBECONFIG}").stdout
    assert yaml.safe_load(text)["clusters"][0]["cluster"]["server"] == f"https://{cluster.api_vip}:6443"
    copy = cluster.dir / "recovery.kubeconfig"
    copy.write_text(text)
    assert CoreV1Api(kube(cluster, copy)).read_namespace("openshift-etcd").metadata.name == "openshift-etcd"


def test_api_is_down_while_no_host_runs_a_kube_apiserver(cluster: TwinSpec, api: ApiClient) -> None:
    move = "sudo mv /etc/kubernetes/manifests/kube-apiserver-pod.yaml /tmp/"
    back = "sudo mv /tmp/kube-apiserver-pod.yaml /etc/kubernetes/manifests/"
    try:
        for host in cluster.hosts:
            assert ssh(cluster, host, move).returncode == 0
        wait_for(lambda: not lifecycle.api_ready(cluster), 15, "the API to go down")
        with pytest.raises(ApiException) as down:
            CoreV1Api(api).list_namespace()
        assert down.value.status == 503
    finally:
        for host in cluster.hosts:
            ssh(cluster, host, back)
    wait_for(lambda: lifecycle.api_ready(cluster), 15, "the API to come back")
    assert CoreV1Api(api).read_namespace("payments").status.phase == "Active"


def test_kubelet_restart_with_its_pki_keeps_the_node_ready(cluster: TwinSpec, api: ApiClient) -> None:
    host = cluster.hosts[2]
    assert ssh(cluster, host, "sudo systemctl restart kubelet.service").returncode == 0
    wait_for(lambda: ready(api, host.name) == "True", 10, "the node to stay Ready")
    assert not [c for c in pending_csrs(api, BOOTSTRAP) if host.name in _subject(c)]


def test_cleared_pki_rebootstraps_through_csrs(cluster: TwinSpec, api: ApiClient) -> None:
    host = cluster.hosts[1]
    result = ssh(
        cluster, host, "sudo rm -f /var/lib/kubelet/pki/*.pem && sudo systemctl restart kubelet.service"
    )
    assert result.returncode == 0
    wait_for(lambda: _pending_for(api, host.name, BOOTSTRAP), 10, "a node-bootstrapper CSR")
    assert ready(api, host.name) != "True"
    csr = _pending_for(api, host.name, BOOTSTRAP)[0]
    assert csr.spec.username == BOOTSTRAPPER
    assert set(csr.spec.usages) == {"digital signature", "key encipherment", "client auth"}
    assert _subject(csr) == f"CN=system:node:{host.name},O=system:nodes"
    approve(api, csr)
    # Installer-provisioned: cluster-machine-approver approves the kubelet-serving CSR that follows.
    wait_for(lambda: ready(api, host.name) == "True", 15, "the node to become Ready")
    serving = [
        c
        for c in CertificatesV1Api(api).list_certificate_signing_request().items
        if c.spec.signer_name == SERVING and c.spec.username == f"system:node:{host.name}"
    ]
    assert serving and serving[-1].status.certificate
    pem = ssh(cluster, host, "sudo cat /var/lib/kubelet/pki/kubelet-client-current.pem").stdout
    subject = x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()
    assert subject == f"CN=system:node:{host.name},O=system:nodes"
    listing = ssh(cluster, host, "sudo ls /var/lib/kubelet/pki").stdout.split()
    assert {"kubelet-client-current.pem", "kubelet-server-current.pem"} <= set(listing)


def test_expired_certificates_need_the_bootstrapper_csrs_approved(cluster: TwinSpec, api: ApiClient) -> None:
    nodes = disasters.expire_certs(cluster)
    assert len(nodes) == len(cluster.hosts) + 2
    wait_for(lambda: len(_bootstrappers(api)) >= len(nodes), 15, "a bootstrapper CSR per node")
    assert all(ready(api, name) != "True" for name in nodes)
    for csr in _bootstrappers(api):
        approve(api, csr)
    wait_for(lambda: all(ready(api, name) == "True" for name in nodes), 20, "every node Ready again")


def test_forged_csrs_look_like_bootstrap_requests_but_are_not(cluster: TwinSpec, api: ApiClient) -> None:
    wrong = disasters.forged_csr(cluster, "wrong-requestor")
    unknown = disasters.forged_csr(cluster, "unknown-node")
    certificates = CertificatesV1Api(api)
    forged = certificates.read_certificate_signing_request(wrong)
    assert forged.spec.signer_name == BOOTSTRAP and forged.spec.username != BOOTSTRAPPER
    stranger = certificates.read_certificate_signing_request(unknown)
    assert stranger.spec.username == BOOTSTRAPPER
    node_names = {n.metadata.name for n in CoreV1Api(api).list_node().items}
    assert _subject(stranger).split(",")[0].removeprefix("CN=system:node:") not in node_names
    for name in (wrong, unknown):
        certificates.delete_certificate_signing_request(name)


def test_etcd_pods_tell_whether_each_host_runs_etcd(cluster: TwinSpec, api: ApiClient) -> None:
    host = cluster.hosts[1]
    pod = f"etcd-{host.name}"
    core = CoreV1Api(api)
    assert core.read_namespaced_pod(pod, "openshift-etcd").status.phase == "Running"
    try:
        assert ssh(cluster, host, "sudo mv /etc/kubernetes/manifests/etcd-pod.yaml /tmp/").returncode == 0
        wait_for(lambda: pod not in _etcd_pods(core), 15, "the mirror pod to go")
    finally:
        ssh(cluster, host, "sudo mv /tmp/etcd-pod.yaml /etc/kubernetes/manifests/")
    wait_for(lambda: _etcd_pods(core).get(pod) == "True", 20, "the etcd pod to be ready again")


def test_deleted_ovn_databases_come_back_with_the_ovnkube_node_pod(cluster: TwinSpec, api: ApiClient) -> None:
    host = cluster.hosts[0]
    assert ssh(cluster, host, "sudo rm -f /var/lib/ovn-ic/etc/*.db").returncode == 0
    core = CoreV1Api(api)
    selector = f"spec.nodeName={host.name}"
    core.delete_collection_namespaced_pod(
        "openshift-ovn-kubernetes", label_selector="app=ovnkube-node", field_selector=selector
    )

    def back() -> bool:
        files = ssh(cluster, host, "sudo ls /var/lib/ovn-ic/etc").stdout.split()
        return files == ["ovnnb_db.db", "ovnsb_db.db"]

    wait_for(back, 15, "the OVN databases to be recreated")


def test_a_replacement_machine_adopts_the_freed_host(cluster: TwinSpec, api: ApiClient) -> None:
    custom = CustomObjectsApi(api)
    machine_api = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machines")
    host = cluster.hosts[2]
    old = next(
        m
        for m in custom.list_namespaced_custom_object(*machine_api)["items"]
        if m["status"].get("nodeRef", {}).get("name") == host.name
    )
    new = {k: v for k, v in old.items() if k != "status"}
    new["metadata"] = {
        "name": old["metadata"]["name"].rsplit("-", 1)[0] + "-3",
        "namespace": "openshift-machine-api",
        "labels": old["metadata"]["labels"],
    }
    new["spec"] = {k: v for k, v in old["spec"].items() if k != "providerID"}
    custom.delete_namespaced_custom_object(*machine_api, old["metadata"]["name"])
    core = CoreV1Api(api)
    wait_for(lambda: host.name not in {n.metadata.name for n in core.list_node().items}, 15, "the node to go")
    custom.create_namespaced_custom_object(*machine_api, new)

    def running() -> bool:
        machine = custom.get_namespaced_custom_object(*machine_api, new["metadata"]["name"])
        return machine.get("status", {}).get("phase") == "Running"

    wait_for(running, 20, "the new machine to run")
    machine = custom.get_namespaced_custom_object(*machine_api, new["metadata"]["name"])
    assert machine["status"]["nodeRef"]["name"] == host.name
    wait_for(lambda: ready(api, host.name) == "True", 20, "the host's node to return")
    wait_for(lambda: _members_started(cluster) == len(cluster.hosts), 30, "etcd to have the host back")


def _subject(csr) -> str:
    request = x509.load_pem_x509_csr(base64.b64decode(csr.spec.request))
    return request.subject.rfc4514_string()


def _pending_for(api: ApiClient, node: str, signer: str) -> list:
    return [c for c in pending_csrs(api, signer) if _subject(c).startswith(f"CN=system:node:{node},")]


def _bootstrappers(api: ApiClient) -> list:
    return [c for c in pending_csrs(api, BOOTSTRAP) if c.spec.username == BOOTSTRAPPER]


def _etcd_pods(core: CoreV1Api) -> dict[str, str]:
    pods = core.list_namespaced_pod("openshift-etcd", label_selector="k8s-app=etcd").items
    return {
        p.metadata.name: next((c.status for c in p.status.conditions or [] if c.type == "Ready"), "False")
        for p in pods
    }


def _members_started(spec: TwinSpec) -> int:
    result = lifecycle.etcdctl(spec, "member", "list")
    return sum(1 for line in result.stdout.splitlines() if ", started, " in line)
