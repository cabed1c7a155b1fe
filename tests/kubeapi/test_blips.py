"""API blips as the kubernetes client sees them: 500 with a Status, 429 with Retry-After, connection
resets, writes carried out whose answer is lost, and connections refused while the kube-apiserver
serving the API restarts. Calm while the API is not fragile."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sim.kubeapi import ClusterFacts, KubeApiServer
from sim.kubeapi.blips import BlipSettings
from sim.kubeapi.operators.common import resource

from .conftest import MASTERS, EtcdProcess, UpSwitch, wait_for

BLIP_HOST = "127.0.0.77"
BLIP_ETCD_HOST = "127.0.0.78"
"""Its own etcd: seeding a second cluster into the shared one would give the other tests' cluster a
second set of every DaemonSet's pods."""
NAMESPACE = "payments"
# A hang guard for the client, not a performance figure.
REQUEST_TIMEOUT = 10
KUBEAPISERVERS = resource("operator.openshift.io", "v1", "kubeapiservers")


@pytest.fixture(scope="module")
def fragile() -> UpSwitch:
    """Whether the twin would say only one kube-apiserver runs; tests flip it."""
    switch = UpSwitch()
    switch.up = False
    return switch


@pytest.fixture(scope="module")
def blip_etcd(workdir: Path) -> Iterator[EtcdProcess]:
    proc = EtcdProcess(workdir / "etcd-blips", host=BLIP_ETCD_HOST)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def blip_server(blip_etcd: EtcdProcess, workdir: Path, fragile: UpSwitch) -> Iterator[KubeApiServer]:
    etcd = blip_etcd
    server = KubeApiServer(
        etcd_endpoints=[etcd.endpoint],
        etcd_ca=etcd.ca,
        etcd_cert=etcd.client_cert,
        etcd_key=etcd.client_key,
        state_dir=workdir / "kubeapi-blips",
        host=BLIP_HOST,
        port=6443,
        # The test steps the operators itself (reconcile_once) to hold a rollout where it wants it.
        run_operators=False,
        blips=BlipSettings(rate=1.0, restart=1.0),
        degraded=fragile,
    )
    try:
        server.start()
        server.seed(ClusterFacts(masters=MASTERS, version="4.14.38"))
        yield server
    finally:
        server.stop()


def new_client(server: KubeApiServer) -> client.ApiClient:
    """drbot's client settings: urllib3 does not retry on its own, so every error reaches the caller."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig_path), client_configuration=configuration)
    configuration.retries = 0
    return client.ApiClient(configuration)


@pytest.fixture()
def api(blip_server: KubeApiServer) -> Iterator[client.ApiClient]:
    api = new_client(blip_server)
    try:
        yield api
    finally:
        api.close()


def kind_of(error: Exception) -> str:
    if isinstance(error, ApiException):
        return str(error.status)
    cause = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
    if isinstance(cause, urllib3.exceptions.ProtocolError):
        # A TCP reset under TLS: Python's ssl reads it as an end of stream (RemoteDisconnected).
        return "reset"
    if isinstance(cause, urllib3.exceptions.NewConnectionError) and "refused" in str(cause).lower():
        return "refused"
    return f"{type(error).__name__}: {error}"


def attempt(fn: Callable[..., object], *args: object) -> tuple[str, Exception | None]:
    try:
        fn(*args, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, urllib3.exceptions.HTTPError) as error:
        return kind_of(error), error
    return "ok", None


def test_calm_while_the_api_is_not_fragile(api: client.ApiClient, fragile: UpSwitch) -> None:
    fragile.up = False
    core = client.CoreV1Api(api)
    assert [attempt(core.read_namespace, NAMESPACE)[0] for _ in range(30)] == ["ok"] * 30


def test_the_client_sees_each_kind_of_error(api: client.ApiClient, fragile: UpSwitch) -> None:
    fragile.up = True
    core = client.CoreV1Api(api)
    seen: dict[str, Exception] = {}
    try:
        for _ in range(200):
            kind, error = attempt(core.read_namespace, NAMESPACE)
            assert error is not None, "every request blips at rate 1.0"
            seen.setdefault(kind, error)
            if {"500", "429", "reset"} <= set(seen):
                break
    finally:
        fragile.up = False
    assert set(seen) == {"500", "429", "reset"}, seen
    internal, throttled = seen["500"], seen["429"]
    assert isinstance(internal, ApiException) and isinstance(throttled, ApiException)
    assert json.loads(internal.body)["reason"] == "InternalError"
    assert throttled.headers["Retry-After"] == "1"
    assert json.loads(throttled.body)["details"]["retryAfterSeconds"] == 1


def test_a_write_can_be_carried_out_and_its_answer_lost(
    api: client.ApiClient, blip_server: KubeApiServer, fragile: UpSwitch
) -> None:
    core = client.CoreV1Api(api)
    calm = new_client(blip_server)
    lost = []
    try:
        for index in range(60):
            name = f"blip-{index}-{time.monotonic_ns()}"
            body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"a": "b"})
            fragile.up = True
            kind, _ = attempt(core.create_namespaced_config_map, NAMESPACE, body)
            fragile.up = False
            if kind != "ok" and _exists(client.CoreV1Api(calm), name):
                lost.append(kind)
                break
    finally:
        fragile.up = False
        calm.close()
    assert lost and lost[0] in ("500", "reset"), "a create that failed for the client was stored"


def test_connections_are_refused_while_the_kube_apiserver_restarts(
    api: client.ApiClient, blip_server: KubeApiServer
) -> None:
    core = client.CoreV1Api(api)
    assert attempt(core.read_namespace, NAMESPACE)[0] == "ok"  # leaves a pooled connection
    fresh = new_client(blip_server)
    try:
        blip_server.restart_apiserver(1.0)
        assert attempt(client.CoreV1Api(fresh).read_namespace, NAMESPACE)[0] == "refused"
        wait_for(
            lambda: attempt(client.CoreV1Api(fresh).read_namespace, NAMESPACE)[0] == "ok",
            10,
            "the restarted kube-apiserver to listen again",
        )
        # The pooled connection went to the instance that restarted: it is dead.
        assert attempt(core.read_namespace, NAMESPACE)[0] == "reset"
        assert attempt(core.read_namespace, NAMESPACE)[0] == "ok"
    finally:
        fresh.close()


def test_a_kube_apiserver_rollout_makes_the_api_fragile(
    api: client.ApiClient, blip_server: KubeApiServer
) -> None:
    core = client.CoreV1Api(api)
    blip_server.operators.reconcile_once()  # the operator notes the current reason first
    _force(blip_server, f"recovery-{time.time_ns()}")
    blip_server.operators.reconcile_once()
    time.sleep(0.6)  # the rollout answer is cached for 0.5 s
    kinds = {attempt(core.read_namespace, NAMESPACE)[0] for _ in range(10)}
    assert "ok" not in kinds, kinds

    def rolled_out() -> bool:
        blip_server.operators.reconcile_once()
        time.sleep(0.1)
        return not _rolling(blip_server)

    wait_for(rolled_out, 30, "the kube-apiserver revision to reach every node")
    time.sleep(0.6)
    assert {attempt(core.read_namespace, NAMESPACE)[0] for _ in range(10)} == {"ok"}


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _force(server: KubeApiServer, reason: str) -> None:
    """`oc patch kubeapiserver cluster` forceRedeploymentReason, written past the blips."""

    def change(current: dict) -> dict:
        current.setdefault("spec", {})["forceRedeploymentReason"] = reason
        return current

    server.store.modify(KUBEAPISERVERS, None, "cluster", change)


def _rolling(server: KubeApiServer) -> bool:
    obj = server.store.get(KUBEAPISERVERS, None, "cluster")
    return any(
        c["type"] == "NodeInstallerProgressing" and c["status"] == "True"
        for c in obj["status"].get("conditions", [])
    )
