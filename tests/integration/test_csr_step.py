"""The CSR step (5.4.3.1) against the simulated API over HTTPS and real etcd, with real Redis: bootstrap
CSRs approved in bulk through the bot's click handling, the serving wave watched (installer-provisioned)
or approved (user-provisioned), forged CSRs flagged and left pending, and refused clicks."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from redis import Redis
from slack_sdk import WebClient

from bot.actions import csr as csr_actions
from bot.deps import Deps
from bot.outbox import Outbox
from procedures.clusters import parse_clusters
from procedures.csr_checks import BOOTSTRAPPER, CLIENT_SIGNER, offered_digest
from procedures.registry import PROCEDURES
from sim.kubeapi import ClusterFacts, KubeApiServer, NodeFacts
from sim.kubeapi.certs import node_csr_pem
from sim.kubeapi.operators import Timing
from tests.kubeapi.conftest import EtcdProcess
from workers import keys
from workers.control import Control
from workers.engine import Engine
from workers.pools import PoolCache
from workers.runs import SUCCEEDED, RunStore
from workers.timeline import Timeline

MASTERS = [NodeFacts(f"master-{i}.csr.example.com", f"127.0.0.9{i}") for i in range(3)]
WORKERS = [NodeFacts(f"worker-{i}.csr.example.com", f"127.0.0.9{i + 5}") for i in range(2)]
PLATFORMS = {
    "installer-provisioned": ("127.0.0.90", "127.0.0.91"),
    "user-provisioned": ("127.0.0.92", "127.0.0.93"),
}


@pytest.fixture(scope="module", params=sorted(PLATFORMS))
def cluster_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, KubeApiServer]]:
    platform = request.param
    etcd_host, api_host = PLATFORMS[platform]
    root = tmp_path_factory.mktemp(platform)
    etcd = EtcdProcess(root / "etcd", host=etcd_host)
    etcd.start()
    server = KubeApiServer(
        etcd_endpoints=[etcd.endpoint],
        etcd_ca=etcd.ca,
        etcd_cert=etcd.client_cert,
        etcd_key=etcd.client_key,
        state_dir=root / "api",
        host=api_host,
        port=6443,
        control_plane_up=lambda: True,
        installer_provisioned=platform == "installer-provisioned",
        timing=Timing.fast(),
        cluster_name="csr",
    )
    try:
        server.start()
        server.seed(ClusterFacts(masters=MASTERS, workers=WORKERS))
        yield platform, server
    finally:
        server.stop()
        etcd.stop()


def forged(name: str, node: str, username: str) -> client.V1CertificateSigningRequest:
    return client.V1CertificateSigningRequest(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1CertificateSigningRequestSpec(
            request=base64.b64encode(node_csr_pem(node, serving=False)).decode(),
            signer_name=CLIENT_SIGNER,
            usages=["digital signature", "key encipherment", "client auth"],
            username=username,
        ),
    )


def click(deps: Deps, user: str, action: str, value: str) -> str:
    body: dict[str, Any] = {
        "user": {"id": user},
        "channel": {"id": "C1"},
        "actions": [{"action_id": f"csr:{action}", "value": value}],
    }
    return csr_actions.click(deps, body)


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_csr_waves_are_approved_forged_ones_flagged_and_left_pending(
    cluster_api: tuple[str, KubeApiServer], redis: Redis, tmp_path: Path
) -> None:
    platform, server = cluster_api
    clusters = parse_clusters(
        {
            "clusters": [
                {
                    "name": "csr",
                    "platform": platform,
                    "kubeconfig": str(server.kubeconfig_path),
                    "approvers": ["U0ALICE", "U0BOB"],
                    "ssh": {"key": "/k", "known_hosts": "/kh"},
                    "hosts": [{"name": n.name, "address": n.address} for n in MASTERS],
                }
            ]
        }
    )
    api = client.CertificatesV1Api(config.new_client_from_config(str(server.kubeconfig_path)))
    for node in [*MASTERS, *WORKERS]:
        server.file_bootstrap_csr(node.name)
    api.create_certificate_signing_request(
        forged("forged-requestor", MASTERS[0].name, "system:serviceaccount:default:x")
    )
    api.create_certificate_signing_request(forged("forged-ghost", "ghost.csr.example.com", BOOTSTRAPPER))

    deps = Deps(
        redis=redis,
        clusters=clusters,
        procedures=PROCEDURES,
        outbox=Outbox(redis),
        web=WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/"),
    )
    control = Control(redis, PROCEDURES)
    run = control.start("certs", "csr", "C1", "U0ALICE")
    engine = Engine(redis, clusters, PROCEDURES, PoolCache())
    worker = threading.Thread(target=engine.advance, args=(run.id,), daemon=True)
    worker.start()

    def panel() -> dict[str, Any] | None:
        token = (RunStore(redis).load(run.id).vars or {}).get("panel_token:approve-csrs")
        raw = redis.hgetall(keys.panel(token)) if token else {}
        return {k.decode(): v.decode() for k, v in raw.items()} | {"token": token} if raw else None

    def offered() -> list[dict[str, Any]]:
        return json.loads(panel()["data"])["offered"]

    wait(lambda: panel() and len([v for v in offered() if v["wave"] == "client"]) == 7, 20, "the first wave")
    views = {v["name"]: v for v in offered()}
    assert views["forged-requestor"]["problems"][0]["key"] == "csr.check.requestor_client"
    assert views["forged-ghost"]["problems"][0]["key"] == "csr.check.unknown_node"
    assert sum(1 for v in views.values() if not v["problems"]) == 5

    first = panel()
    assert (
        click(
            deps, "U0MALLORY", "approve_all", f"{first['token']}|{offered_digest(json.loads(first['data']))}"
        )
        == "not_approver"
    )
    assert click(deps, "U0BOB", "approve_all", f"{first['token']}|0") == "stale"
    assert click(deps, "U0BOB", "details", f"{first['token']}|forged-ghost|x") == "details"
    ghost = views["forged-ghost"]["uid"]
    assert (
        click(deps, "U0ALICE", "approve_flagged", f"{first['token']}|forged-ghost|{ghost}") == "requester"
    ), "the requester cannot approve a flagged CSR alone"
    assert (
        click(deps, "U0BOB", "approve_all", f"{first['token']}|{offered_digest(json.loads(first['data']))}")
        == "queued"
    )

    if platform == "user-provisioned":
        wait(
            lambda: len([v for v in offered() if v["wave"] == "serving" and v["pending"]]) == 5,
            30,
            "the kubelet-serving wave offered for approval",
        )
        second = panel()
        assert (
            click(
                deps,
                "U0BOB",
                "approve_all",
                f"{second['token']}|{offered_digest(json.loads(second['data']))}",
            )
            == "queued"
        )

    worker.join(timeout=60)
    assert not worker.is_alive()
    finished = RunStore(redis).load(run.id)
    assert finished.status == SUCCEEDED, finished.result
    pending = {
        c.metadata.name for c in api.list_certificate_signing_request().items if not c.status.conditions
    }
    assert pending == {"forged-requestor", "forged-ghost"}, "forged CSRs stay pending"
    approvals = [e for e in Timeline(redis).entries("C1") if e.kind == "approval"]
    assert all(e.who == "U0BOB" for e in approvals)
    assert len(approvals) == (10 if platform == "user-provisioned" else 5)
    assert (
        click(deps, "U0BOB", "approve_all", f"{first['token']}|{offered_digest(json.loads(first['data']))}")
        == "stale"
    ), "run moved on"
