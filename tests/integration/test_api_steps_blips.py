"""The restore's API steps that change the cluster, against the twin's API while it blips hard: 500s,
429s and connection resets for a third of the requests, writes carried out with their answers lost
among them. Each step converges when it runs twice, and when it is interrupted at any point (the
worker died) and runs again: no machine lost or made twice, no CSR approved twice, no second revision.

A real etcd and the simulated API over HTTPS, the real kubernetes client; the step context is a
small stand-in for the engine's (the engine itself has its own tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kubernetes import client

from procedures import kube, restore_api
from procedures.clusters import Cluster, Host
from procedures.csr import _decide, approve_csrs
from procedures.csr_checks import classify, known_nodes
from procedures.i18n import Msg
from procedures.steps import CommandResult
from sim.kubeapi import ClusterFacts, KubeApiServer, NodeFacts, Timing
from sim.kubeapi.blips import BlipSettings
from sim.kubeapi.operators.common import CSRS, MACHINES, NODES, resource
from tests.kubeapi.conftest import EtcdProcess
from workers.kube import api_client

ETCD_HOST = "127.0.0.86"
API_HOST = "127.0.0.87"
RATE = 0.35
MASTERS = [NodeFacts(f"master-{i}.blips.example.com", f"127.0.0.8{i + 1}") for i in range(3)]
ETCDS = resource("operator.openshift.io", "v1", "etcds")
KUBEAPISERVERS = resource("operator.openshift.io", "v1", "kubeapiservers")
MACHINE_NAMESPACE = "openshift-machine-api"


class Interrupted(Exception):
    """The worker running the step died here."""


class Context:
    """What a step sees of the engine: the cluster, the run's variables, the API, progress."""

    def __init__(self, cluster: Cluster, vars: Mapping[str, Any], interrupt_at: int = 0) -> None:
        self.cluster = cluster
        self.params: Mapping[str, str] = {}
        self.vars = dict(vars)
        self.interrupt_at = interrupt_at
        self.progressed = 0
        self.requests: list[dict[str, Any]] = []
        self.told: list[tuple[str, str, str]] = []
        self._api: client.ApiClient | None = None

    def kube(self) -> client.ApiClient:
        if self._api is None:
            self._api = api_client(self.cluster)
        return self._api

    def progress(self, text: Msg) -> None:
        self.progressed += 1
        if self.progressed == self.interrupt_at:
            raise Interrupted(text.key)

    def aborted(self) -> bool:
        return False

    def publish(self, panel: str, data: Mapping[str, Any]) -> str:
        return "token"

    def take_requests(self) -> list[dict[str, Any]]:
        taken, self.requests = self.requests, []
        return taken

    def tell(self, who: str, kind: str, text: Msg) -> None:
        self.told.append((who, kind, text.key))

    def run(self, *args: Any, **kwargs: Any) -> list[CommandResult]:
        raise AssertionError("these steps do not use SSH")

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    root = tmp_path_factory.mktemp("blips")
    etcd = EtcdProcess(root / "etcd", host=ETCD_HOST)
    etcd.start()
    api = KubeApiServer(
        etcd_endpoints=[etcd.endpoint],
        etcd_ca=etcd.ca,
        etcd_cert=etcd.client_cert,
        etcd_key=etcd.client_key,
        state_dir=root / "api",
        host=API_HOST,
        port=6443,
        timing=Timing.fast(),
        cluster_name="blips",
        blips=BlipSettings(rate=RATE),
        degraded=lambda: True,
    )
    try:
        api.start()
        api.seed(ClusterFacts(masters=MASTERS, cluster_name="blips"))
        yield api
    finally:
        api.stop()
        etcd.stop()


@pytest.fixture()
def cluster(server: KubeApiServer) -> Cluster:
    hosts = tuple(Host(n.name, n.address, 22, "core", "/k", "/kh") for n in MASTERS)
    return Cluster(name="blips", hosts=hosts, kubeconfig=str(server.kubeconfig_path))


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter waits than a real cluster needs: this is about converging, not about timing."""
    monkeypatch.setattr(kube, "FIRST_DELAY", 0.05)
    monkeypatch.setattr(kube, "MAX_DELAY", 0.4)
    monkeypatch.setattr(restore_api, "MACHINE_POLL", 0.3)


def run_step(step: Any, cluster: Cluster, vars: Mapping[str, Any], interrupt_at: int = 0) -> Any:
    """Run a step as the engine would: with its bound (restore.py wraps API steps in retrying)."""
    ctx = Context(cluster, vars, interrupt_at)
    try:
        return step(ctx)
    finally:
        ctx.close()


def machine_names(server: KubeApiServer) -> dict[str, str]:
    """Machine name -> phase, read past the blips (straight from the store)."""
    machines = server.store.list(MACHINES, MACHINE_NAMESPACE)[0]
    return {m["metadata"]["name"]: (m.get("status") or {}).get("phase", "") for m in machines}


def reseed(server: KubeApiServer) -> None:
    """The seeded machines and nodes back where a test replaced them: master-1 and master-2 are the
    lost hosts' machines again (seed brings back what is missing)."""
    server.seed(ClusterFacts(masters=MASTERS, cluster_name="blips"))


@pytest.mark.parametrize("interrupt_at", [0, 1, 2, 4, 7, 12])
def test_recreating_machines_converges_after_an_interruption_anywhere(
    server: KubeApiServer, cluster: Cluster, interrupt_at: int
) -> None:
    reseed(server)
    vars: dict[str, Any] = {"recovery_host": MASTERS[0].name}
    planned = run_step(restore_api.retrying(restore_api.plan_machines), cluster, vars)
    vars.update(planned.vars)
    plan = vars["machine_plan"]
    assert [item["old"].rsplit("-", 2)[1:] for item in plan] == [["master", "1"], ["master", "2"]], plan
    if interrupt_at:
        with pytest.raises(Interrupted):
            run_step(restore_api.recreate_machines, cluster, vars, interrupt_at)
    first = run_step(restore_api.recreate_machines, cluster, vars)
    again = run_step(restore_api.recreate_machines, cluster, vars)
    assert first.ok and again.ok
    assert first.vars["machines_replaced"] == again.vars["machines_replaced"]
    names = machine_names(server)
    new = {name for name in names if name not in vars["machines_before"]}
    assert new == {item["new"] for item in plan}, "each lost machine has exactly its one replacement"
    assert all(names[item["new"]] == "Running" for item in plan)
    assert not any(item["old"] in names for item in plan), "the old machines are gone"


def test_csr_approvals_happen_once_even_when_answers_are_lost(
    server: KubeApiServer, cluster: Cluster
) -> None:
    reseed(server)
    names = [server.file_bootstrap_csr(node.name) for node in MASTERS]
    uids = [server.store.get(CSRS, None, name)["metadata"]["uid"] for name in names]
    step = approve_csrs("approve-csrs", "5.4.2.2 step 11")
    ctx = Context(cluster, {})
    try:
        for _ in range(2):  # the same click twice, as after a worker that died mid-round
            ctx.requests = [{"step": "approve-csrs", "user": "U0BOB", "action": "approve_all", "uids": uids}]
            step.condition(ctx)
    finally:
        ctx.close()
    for name in names:
        conditions = server.store.get(CSRS, None, name)["status"]["conditions"]
        assert [c["type"] for c in conditions] == ["Approved"], (name, conditions)
    approvals = [kind for _, kind, _ in ctx.told if kind == "approval"]
    assert len(approvals) == len(names), ctx.told


@pytest.mark.parametrize(("approver", "told"), [("U0BOB", "approval"), ("U0ALICE", "note")])
def test_an_approval_found_already_made_is_not_made_again(
    server: KubeApiServer, cluster: Cluster, approver: str, told: str
) -> None:
    """bob's click finds the CSR approved: by his own attempt whose answer was lost (reported as
    done), or by alice (bob is told); either way no second condition."""
    reseed(server)
    name = server.file_bootstrap_csr(MASTERS[1].name)
    pending = server.store.get(CSRS, None, name)
    view = classify(pending, known_nodes([server.store.get(NODES, None, MASTERS[1].name)], []))

    def approved(current: dict) -> dict:
        current.setdefault("status", {})["conditions"] = [
            {
                "type": "Approved",
                "status": "True",
                "reason": "DrbotApprove",
                "message": f"Approved by {approver} through drbot",
            }
        ]
        return current

    server.store.modify(CSRS, None, name, approved)
    ctx = Context(cluster, {})
    try:
        _decide(ctx, client.CertificatesV1Api(ctx.kube()), view, "U0BOB", approve=True)
    finally:
        ctx.close()
    assert [c["type"] for c in server.store.get(CSRS, None, name)["status"]["conditions"]] == ["Approved"]
    assert [kind for _, kind, _ in ctx.told] == [told], ctx.told


def test_ovn_pods_deleted_twice_is_fine(server: KubeApiServer, cluster: Cluster) -> None:
    for step in (restore_api.restart_ovn_control_plane, restore_api.restart_ovnkube_node_pods):
        first = run_step(restore_api.retrying(step), cluster, {})
        again = run_step(restore_api.retrying(step), cluster, {})
        assert first.ok and again.ok


def test_a_forced_redeployment_is_cut_once(server: KubeApiServer, cluster: Cluster) -> None:
    vars = {"restored_at": time.time()}
    latest = int(server.store.get(KUBEAPISERVERS, None, "cluster")["status"]["latestAvailableRevision"])
    force = restore_api.retrying(restore_api.force_redeployment("kubeapiservers"))
    first = run_step(force, cluster, vars)
    _wait(lambda: _latest(server) == latest + 1, "the operator to cut the new revision")
    again = run_step(force, cluster, vars)
    time.sleep(1.0)  # several operator passes
    assert _latest(server) == latest + 1, "the second run did not cut another revision"
    assert first.vars == again.vars == {"kubeapiservers_before": latest}


def test_the_quorum_guard_is_turned_off_and_on_again_safely(server: KubeApiServer, cluster: Cluster) -> None:
    for enabled in (False, False, True, True):
        outcome = run_step(restore_api.retrying(restore_api.quorum_guard(enabled)), cluster, {})
        assert outcome.ok
        overrides = (server.store.get(ETCDS, None, "cluster").get("spec") or {}).get(
            "unsupportedConfigOverrides"
        )
        assert bool(overrides) is not enabled


def _latest(server: KubeApiServer) -> int:
    return int(server.store.get(KUBEAPISERVERS, None, "cluster")["status"]["latestAvailableRevision"])


def _wait(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
