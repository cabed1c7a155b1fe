"""Drill: expired control-plane certificates (5.4.3). Every kubelet's client certificate expires and
two forged CSRs are slipped in; alice types /dr certs, bob approves the valid CSRs in bulk (and the
kubelet-serving wave on a user-provisioned twin); every node must end Ready and the forged CSRs
must still be pending."""

from __future__ import annotations

import json
import time

from kubernetes import client, config

from drbot.drills.common import RUN_TIMEOUT, Report, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage, twin
from procedures.clusters import load_clusters
from procedures.csr_checks import not_ready
from procedures.i18n import t
from workers.runs import RunStore

FORGED = ("wrong-requestor", "unknown-node")


def approve_all_button(stage: Stage) -> tuple[str, str] | None:
    """The CSR panel's (message ts, button value) while it offers valid CSRs for bulk approval."""
    for message in stage.slack.messages(CHANNEL):
        buttons = [e for b in message.blocks or [] if b.get("type") == "actions" for e in b["elements"]]
        bulk = next((e for e in buttons if e.get("action_id") == "csr:approve_all"), None)
        if bulk:
            return message.ts, bulk["value"]
    return None


def approve_until_done(stage: Stage, user: str, run_id: str) -> list[str]:
    """What an approver does, as the runbook says: list, approve the valid ones, list again, until the
    run ends. Each offer (the set of valid CSRs shown) is clicked once; returns the waves approved."""
    clicked: set[str] = set()
    waves: list[str] = []

    def ended() -> bool:
        run = RunStore(stage.redis()).load(run_id)
        return run is None or run.finished

    deadline = time.monotonic() + RUN_TIMEOUT
    while not ended() and time.monotonic() < deadline:
        offered = approve_all_button(stage)
        if offered and offered[1] not in clicked:
            ts, value = offered
            clicked.add(value)
            message = next(m for m in stage.slack.messages(CHANNEL) if m.ts == ts)
            waves += [w for w in ("client", "serving") if f"{w} for" in json.dumps(message.blocks)]
            stage.slack.click(user, ts, "csr:approve_all", value)
        time.sleep(0.5)
    return waves


def kube(stage: Stage) -> client.ApiClient:
    cluster = load_clusters(stage.config).get(load_clusters(stage.config).names()[0])
    return config.new_client_from_config(cluster.kubeconfig)


def run(stage: Stage, report: Report) -> None:
    cluster = load_clusters(stage.config).get(load_clusters(stage.config).names()[0])
    with report.phase("the kubelets' client certificates expire; two forged CSRs appear"):
        twin("disaster", "expire-certs", "--dir", str(stage.directory))
        for kind in FORGED:
            twin("fault", "forged-csr", "--kind", kind, "--dir", str(stage.directory))
    with report.phase(f"alice types /dr certs {cluster.name}; bob approves the valid CSRs"):
        status, body = stage.slack.slash("U0ALICE", CHANNEL, f"certs {cluster.name}")
        report.check(status == 200, f"/dr certs acknowledged (HTTP {status})")
        run_id = started_run(body)
        waves = approve_until_done(stage, "U0BOB", run_id)
        report.check("client" in waves, "bob approved node-bootstrapper CSRs in Slack")
        upi = cluster.platform == "user-provisioned"
        expected = (
            "kubelet-serving CSRs were offered in Slack"
            if upi
            else ("the machine approver signed the kubelet-serving CSRs; drbot only watched")
        )
        report.check(("serving" in waves) == upi, expected)
        final = wait_for_run_end(stage, run_id)
        report.check(t("status.succeeded") in final, "the status message says the recovery succeeded")
    with report.phase("check the nodes and the CSRs through the API"):
        api = kube(stage)
        nodes = api.sanitize_for_serialization(client.CoreV1Api(api).list_node().items)
        report.check(not not_ready(nodes), f"every node is Ready ({len(nodes)} nodes)")
        csrs = client.CertificatesV1Api(api).list_certificate_signing_request().items
        pending = [c.metadata.name for c in csrs if not (c.status and c.status.conditions)]
        report.check(len(pending) == len(FORGED), f"the forged CSRs are still pending ({', '.join(pending)})")
