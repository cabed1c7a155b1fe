"""The API goes down with the control plane or etcd, answers 503 instead of hanging, and etcd is the truth:
restoring a snapshot brings deleted objects back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import EtcdProcess, UpSwitch, wait_for

# A hang guard for the client, not a performance figure: without it a hanging server would stall the suite.
REQUEST_TIMEOUT = 10


def _reason(exc: ApiException) -> str:
    return json.loads(exc.body)["reason"]


def test_503_while_no_kube_apiserver_runs(api_client: client.ApiClient, up_switch: UpSwitch) -> None:
    core = client.CoreV1Api(api_client)
    up_switch.up = False
    try:
        with pytest.raises(ApiException) as down:
            core.list_namespace(_request_timeout=REQUEST_TIMEOUT)
        assert down.value.status == 503
        assert _reason(down.value) == "ServiceUnavailable"
    finally:
        up_switch.up = True
    assert core.read_namespace("payments").status.phase == "Active"


def test_503_while_etcd_is_down_and_back_after(api_client: client.ApiClient, etcd: EtcdProcess) -> None:
    core = client.CoreV1Api(api_client)
    etcd.stop()
    try:
        with pytest.raises(ApiException) as down:
            core.read_namespace("payments", _request_timeout=REQUEST_TIMEOUT)
        assert down.value.status == 503
        assert "etcd" in json.loads(down.value.body)["message"]
    finally:
        etcd.start()
    # Pooled connections to the old etcd process are dead; the first request must still succeed.
    assert core.read_namespace("payments", _request_timeout=REQUEST_TIMEOUT).metadata.name == "payments"


def test_snapshot_restore_brings_deleted_namespace_back(
    api_client: client.ApiClient, etcd: EtcdProcess, workdir: Path
) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    assert apps.read_namespaced_deployment("payments-api", "payments").spec.replicas == 2
    snapshot = workdir / "snapshot.db"
    etcd.snapshot(snapshot)
    core.delete_namespace("payments")
    wait_for(lambda: not _exists(core, "payments"), what="namespace payments to be gone")
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("payments-api", "payments")
    assert gone.value.status == 404
    assert core.list_namespaced_secret("payments").items == []
    etcd.restore(snapshot)
    assert core.read_namespace("payments").status.phase == "Active"
    assert apps.read_namespaced_deployment("payments-api", "payments").spec.replicas == 2
    assert core.read_namespaced_secret("payments-api-db", "payments").data["username"]
    assert (
        core.read_namespaced_persistent_volume_claim("payments-api-data", "payments").status.phase == "Bound"
    )


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
