"""A user-provisioned twin: kubelet-serving CSRs wait for a person, and the API says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from kubernetes.client import AppsV1Api, CoreV1Api

from sim.twin import disasters, lifecycle
from sim.twin.layout import TwinSpec
from tests.twin.conftest import approve, kube, own_twin, pending_csrs, ready, ssh, wait_for

pytestmark = pytest.mark.twin

BOOTSTRAP = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING = "kubernetes.io/kubelet-serving"


@pytest.fixture(scope="module")
def upi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSpec]:
    options = lifecycle.ApiOptions(version="4.13.21", platform="user-provisioned")
    with own_twin(tmp_path_factory.mktemp("upi"), options) as spec:
        yield spec


def test_expired_certificates_on_upi_need_both_csr_waves_approved(upi: TwinSpec) -> None:
    assert (
        yaml.safe_load((upi.dir / "clusters.yaml").read_text())["clusters"][0]["platform"]
        == "user-provisioned"
    )
    api = kube(upi)
    nodes = disasters.expire_certs(upi)
    wait_for(lambda: len(pending_csrs(api, BOOTSTRAP)) >= len(nodes), 15, "a bootstrapper CSR per node")
    for csr in pending_csrs(api, BOOTSTRAP):
        approve(api, csr)
    wait_for(lambda: len(pending_csrs(api, SERVING)) >= len(nodes), 15, "the kubelet-serving CSRs")
    # Nobody approves serving CSRs on a user-provisioned cluster: the nodes stay NotReady.
    assert all(ready(api, name) != "True" for name in nodes)
    for csr in pending_csrs(api, SERVING):
        approve(api, csr)
    wait_for(lambda: all(ready(api, name) == "True" for name in nodes), 20, "every node Ready")


def test_413_keeps_its_ovn_databases_under_var_lib_ovn(upi: TwinSpec) -> None:
    directory = upi.in_host(upi.hosts[0], "/var/lib/ovn/etc")
    assert sorted(p.name for p in directory.iterdir()) == ["ovnnb_db.db", "ovnsb_db.db"]


def test_413_ovnkube_master_drops_a_deleted_nodes_ip_and_regains_it(upi: TwinSpec) -> None:
    api = kube(upi)
    apps, core = AppsV1Api(api), CoreV1Api(api)
    host = upi.hosts[2]

    def daemonset_text() -> str:
        # What `oc -n openshift-ovn-kubernetes get ds/ovnkube-master -o yaml | grep IP` searches.
        ds = apps.read_namespaced_daemon_set("ovnkube-master", "openshift-ovn-kubernetes")
        return yaml.safe_dump(api.sanitize_for_serialization(ds))

    assert host.address in daemonset_text()
    core.delete_node(host.name)
    wait_for(
        lambda: host.address not in daemonset_text(), 10, "the deleted node's IP to leave ovnkube-master"
    )
    assert upi.hosts[0].address in daemonset_text()
    # The node returns when its kubelet restarts (the runbook also clears its PKI first).
    assert ssh(upi, host, "sudo systemctl restart kubelet.service").returncode == 0
    wait_for(lambda: host.address in daemonset_text(), 15, "the IP to come back with the node")
