"""kubectl (the real binary, if installed) against the simulated API: the commands the runbook shows."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
from kubernetes import client

from sim.kubeapi import KubeApiServer
from sim.kubeapi.certs import node_csr_pem

from .conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def kubectl(server: KubeApiServer, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", f"--kubeconfig={server.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def test_get_prints_server_side_columns(api_server: KubeApiServer) -> None:
    nodes = kubectl(api_server, "get", "nodes", "-o", "wide").splitlines()
    assert nodes[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert len(nodes) == 6
    machines = kubectl(api_server, "get", "machines", "-n", "openshift-machine-api", "-o", "wide")
    assert "PHASE" in machines.splitlines()[0] and "running" in machines
    reason = kubectl(
        api_server,
        "get",
        "etcd",
        '-o=jsonpath={range .items[0].status.conditions[?(@.type=="NodeInstallerProgressing")]}'
        '{.reason}{"\\n"}{.message}{"\\n"}',
    )
    assert reason.splitlines()[0] == "AllNodesAtLatestRevision"
    assert reason.splitlines()[1].startswith("3 nodes are at revision ")


def test_certificate_approve_scale_and_apply(api_server: KubeApiServer, api_client: client.ApiClient) -> None:
    certs = client.CertificatesV1Api(api_client)
    csr = certs.create_certificate_signing_request(
        client.V1CertificateSigningRequest(
            metadata=client.V1ObjectMeta(generate_name="csr-"),
            spec=client.V1CertificateSigningRequestSpec(
                request=base64.b64encode(node_csr_pem("kubectl-node", serving=False)).decode(),
                signer_name="kubernetes.io/kube-apiserver-client-kubelet",
                usages=["client auth"],
            ),
        )
    )
    kubectl(api_server, "certificate", "approve", csr.metadata.name)
    listing = wait_for(
        lambda: "Approved,Issued" in (out := kubectl(api_server, "get", "csr", csr.metadata.name)) and out,
        what="kubectl get csr to show Approved,Issued",
    )
    assert csr.metadata.name in str(listing)
    condition = certs.read_certificate_signing_request(csr.metadata.name).status.conditions[0]
    assert (condition.type, condition.reason) == ("Approved", "KubectlApprove")

    kubectl(api_server, "scale", "deployment/payments-api", "-n", "payments", "--replicas=4")
    assert (
        client.AppsV1Api(api_client)
        .read_namespaced_deployment_scale("payments-api", "payments")
        .spec.replicas
        == 4
    )
    kubectl(api_server, "scale", "deployment/payments-api", "-n", "payments", "--replicas=2")

    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "namespace": "payments"},
        "data": {"a": "1"},
    }
    kubectl(api_server, "apply", "-f", "-", stdin=json.dumps(manifest))
    manifest["data"] = {"a": "2"}
    kubectl(api_server, "apply", "-f", "-", stdin=json.dumps(manifest))
    applied = client.CoreV1Api(api_client).read_namespaced_config_map("applied", "payments")
    assert applied.data == {"a": "2"}
