"""Drill: expired control-plane certificates (5.4.3). Every kubelet's client certificate expires and
two forged CSRs are slipped in; alice types /dr certs, bob approves the valid CSRs in bulk (and the
kubelet-serving wave on a user-provisioned twin); every node must end Ready and the forged CSRs
must still be pending."""

from __future__ import annotations

from kubernetes import client, config

from drbot.drills.common import Report, approve_until_done, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage, twin
from procedures.clusters import load_clusters
from procedures.csr_checks import not_ready
from procedures.i18n import Msg, t
from workers.timeline import Timeline

FORGED = ("wrong-requestor", "unknown-node")


def approved_waves(stage: Stage, run_id: str) -> set[str]:
    """The CSR waves people approved in Slack during the run, from the incident timeline."""
    return {
        e.text.args["wave"]
        for e in Timeline(stage.redis()).entries(CHANNEL)
        if e.run == run_id and isinstance(e.text, Msg) and e.text.key == "csr.approved"
    }


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
        approve_until_done(stage, run_id)
        waves = approved_waves(stage, run_id)
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
