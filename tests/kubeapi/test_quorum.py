"""Against a three-member etcd, as on a control plane: one member down is survived by failing over,
two down means no quorum, and the API answers 503 instead of hanging until quorum is back."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sim.kubeapi import KubeApiServer
from sim.kubeapi.certs import make_ca

from .conftest import EtcdProcess, wait_for

MEMBERS = {"m0": "127.0.0.72", "m1": "127.0.0.73", "m2": "127.0.0.74"}
API_HOST = "127.0.0.75"
REQUEST_TIMEOUT = 10  # a hang guard for the client, not a performance figure


@pytest.fixture(scope="module")
def members() -> Iterator[list[EtcdProcess]]:
    root = Path(tempfile.mkdtemp(prefix="kubeapi-quorum-"))
    ca = make_ca("etcd-signer")
    procs = [EtcdProcess(root / name, name, host, MEMBERS, ca) for name, host in MEMBERS.items()]
    try:
        for proc in procs:
            proc.launch()
        for proc in procs:
            proc.wait_healthy()
        yield procs
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def core(members: list[EtcdProcess]) -> Iterator[client.CoreV1Api]:
    first = members[0]
    server = KubeApiServer(
        etcd_endpoints=[m.endpoint for m in members],
        etcd_ca=first.ca,
        etcd_cert=first.client_cert,
        etcd_key=first.client_key,
        state_dir=first.root.parent / "kubeapi",
        host=API_HOST,
        run_operators=False,
    )
    server.start()
    api = config.new_client_from_config(config_file=str(server.kubeconfig_path))
    try:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="quorum")))
        yield core
    finally:
        api.close()
        server.stop()


def _read(core: client.CoreV1Api) -> bool:
    try:
        core.read_namespace("quorum", _request_timeout=REQUEST_TIMEOUT)
    except ApiException:
        return False
    return True


def test_one_member_down_is_survived(members: list[EtcdProcess], core: client.CoreV1Api) -> None:
    members[0].stop()
    try:
        assert core.read_namespace("quorum", _request_timeout=REQUEST_TIMEOUT).metadata.name == "quorum"
        core.create_namespaced_config_map(
            "quorum", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one"))
        )
    finally:
        members[0].start()


def test_no_quorum_answers_503_until_quorum_returns(
    members: list[EtcdProcess], core: client.CoreV1Api
) -> None:
    members[1].stop()
    members[2].stop()
    try:
        with pytest.raises(ApiException) as down:
            core.read_namespace("quorum", _request_timeout=REQUEST_TIMEOUT)
        assert down.value.status == 503
        assert json.loads(down.value.body)["reason"] == "ServiceUnavailable"
    finally:
        members[1].launch()
        members[2].launch()
        members[1].wait_healthy()
    wait_for(lambda: _read(core), what="the API to answer once quorum is back")
    assert core.read_namespaced_config_map("one", "quorum").metadata.name == "one"
