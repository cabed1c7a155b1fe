"""What the twin plugs into the API server: installer-gated rollouts, the OVN control-plane IP list,
and forged CSRs."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sim.kubeapi.operators.network import database_env, master_ips
from sim.kubeapi.operators.staticpods import _advance_one

from .conftest import wait_for


def _master(name: str, address: str) -> dict:
    return {
        "metadata": {"name": name, "labels": {"node-role.kubernetes.io/master": ""}},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def test_a_node_reaches_the_revision_only_once_its_installer_reports_it_runs() -> None:
    statuses = [{"nodeName": "a", "currentRevision": 2}, {"nodeName": "b", "currentRevision": 2}]
    installed: dict[str, bool] = {"a": False, "b": False}
    assert _advance_one(statuses, 3, installed.get)  # installer started on a
    assert statuses[0]["targetRevision"] == 3
    assert not _advance_one(statuses, 3, installed.get)  # a does not run revision 3 yet: wait
    assert statuses[0]["currentRevision"] == 2
    installed["a"] = True
    assert _advance_one(statuses, 3, installed.get)
    assert statuses[0]["currentRevision"] == 3 and "targetRevision" not in statuses[0]
    assert _advance_one(statuses, 3, installed.get) and statuses[1]["targetRevision"] == 3


def test_ovn_database_lists_name_every_control_plane_ip_and_nothing_else() -> None:
    worker = {"metadata": {"name": "w", "labels": {}}, "status": {"addresses": []}}
    leaving = _master("c", "10.0.0.3")
    leaving["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    ips = master_ips([_master("b", "10.0.0.2"), _master("a", "10.0.0.1"), worker, leaving])
    assert ips == ["10.0.0.1", "10.0.0.2"]
    assert database_env(ips)[0] == {"name": "OVN_NB_DB_LIST", "value": "ssl:10.0.0.1:9641,ssl:10.0.0.2:9641"}


def test_ovnkube_master_follows_the_control_plane_nodes(api_client: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    template = {
        "metadata": {"labels": {"app": "ovnkube-master"}},
        "spec": {"containers": [{"name": "nbdb", "image": "ovn"}]},
    }
    apps.create_namespaced_daemon_set(
        "openshift-ovn-kubernetes",
        {
            "metadata": {"name": "ovnkube-master"},
            "spec": {"selector": {"matchLabels": {"app": "ovnkube-master"}}, "template": template},
        },
    )

    def env() -> str:
        ds = apps.read_namespaced_daemon_set("ovnkube-master", "openshift-ovn-kubernetes")
        return json.dumps(api_client.sanitize_for_serialization(ds.spec.template.spec.containers[0].env))

    # Other tests share this API server and may have deleted a master: expect the masters there are now.
    nodes = api_client.sanitize_for_serialization(core.list_node().items)
    current = master_ips(nodes)
    assert current, "the seeded cluster has control-plane nodes"
    try:
        wait_for(lambda: all(ip in env() for ip in current), 10, "the masters' IPs in ovnkube-master")
        extra = _master("ip-10-0-1-99.ec2.internal", "127.0.0.99")
        core.create_node(extra)
        wait_for(lambda: "127.0.0.99" in env(), 10, "a new master's IP")
        core.delete_node(extra["metadata"]["name"])
        wait_for(lambda: "127.0.0.99" not in env(), 10, "a deleted master's IP to go")
    finally:
        apps.delete_namespaced_daemon_set("ovnkube-master", "openshift-ovn-kubernetes")


def test_forged_csrs_have_the_wrong_requestor_or_an_unknown_node(api_client: client.ApiClient) -> None:
    certificates = client.CertificatesV1Api(api_client)
    names = []
    for kind in ("wrong-requestor", "unknown-node"):
        response = api_client.call_api(
            "/sim/v1/forged-csr",
            "POST",
            body={"kind": kind},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        names.append(json.loads(response.data)["csr"])
    wrong, unknown = (certificates.read_certificate_signing_request(n) for n in names)
    assert wrong.spec.username == "system:serviceaccount:default:builder"
    assert (
        unknown.spec.username == "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
    )
    for name in names:
        certificates.delete_certificate_signing_request(name)
    with pytest.raises(ApiException) as refused:
        api_client.call_api(
            "/sim/v1/forged-csr", "POST", body={"kind": "nonsense"}, auth_settings=["BearerToken"]
        )
    assert refused.value.status == 400
