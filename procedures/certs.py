"""Recover from expired control-plane certificates (5.4.3.1).

"The cluster can recover automatically from expired control plane certificates. You must, however,
manually approve the pending node-bootstrapper certificate signing requests (CSRs) to recover
kubelet certificates. For user-provisioned installations, you might also need to approve pending
kubelet serving CSRs."
"""

from __future__ import annotations

from kubernetes import client

from procedures.csr import approve_csrs
from procedures.csr_checks import not_ready
from procedures.i18n import msg
from procedures.kube import call
from procedures.steps import Call, Outcome, Procedure, StepContext

SECTION = "5.4.3.1"


def _look(ctx: StepContext) -> Outcome:
    """Before any approval: which nodes are NotReady and how many CSRs wait (`oc get csr`)."""
    api = ctx.kube()
    nodes = api.sanitize_for_serialization(call(ctx.cluster, client.CoreV1Api(api).list_node).items)
    csrs = call(ctx.cluster, client.CertificatesV1Api(api).list_certificate_signing_request).items
    pending = [c for c in csrs if not (c.status and c.status.conditions)]
    missing = not_ready(nodes)
    return Outcome(
        True,
        msg(
            "certs.look",
            nodes=len(nodes),
            not_ready=", ".join(missing) or "-",
            pending=len(pending),
            platform=ctx.cluster.platform,
        ),
    )


def _verify(ctx: StepContext) -> Outcome:
    api = ctx.kube()
    nodes = api.sanitize_for_serialization(call(ctx.cluster, client.CoreV1Api(api).list_node).items)
    missing = not_ready(nodes)
    if missing:
        return Outcome(False, msg("certs.still_not_ready", nodes=", ".join(missing)))
    return Outcome(True, msg("certs.all_ready", count=len(nodes)))


PROCEDURE = Procedure(
    name="certs",
    title=msg("certs.title"),
    section=SECTION,
    steps=(
        Call(id="look", title=msg("certs.step.look"), section=f"{SECTION} step 1", call=_look),
        approve_csrs("approve-csrs", f"{SECTION} steps 1–4"),
        Call(id="verify-nodes", title=msg("certs.step.verify"), section=SECTION, call=_verify),
    ),
)
