"""The CSR step: approve the kubelets' certificate signing requests, as 5.4.3.1 and 5.4.2.2 (step 7) say.

    oc get csr                                   → the panel of pending CSRs, checked (csr_checks.py)
    oc describe csr <csr_name>                   → the "details" button
    oc adm certificate approve <csr_name>        → approve buttons: valid CSRs in bulk, flagged ones
                                                   one by one after a confirmation naming the failed check

First wave: node-bootstrapper client CSRs. Once approved, each kubelet files a kubelet-serving CSR:
on user-provisioned clusters drbot offers those for approval too; on installer-provisioned clusters
the machine approver signs them and drbot only watches. The step ends when no valid CSR is pending
and every node is Ready, and times out saying what is still missing. Flagged CSRs never block it and
are never approved in bulk.

The step is one WaitUntil: every round lists the CSRs, carries out the clicks the bot queued (after
re-reading each CSR, so one that vanished or was decided meanwhile is not touched), and publishes
the panel. The API blips while the control plane recovers: calls retry transient errors for up to
ROUND_RETRY seconds, a round in which the API does not answer counts as "not yet", and a click it
could not carry out is reported to the person who clicked. An approval whose answer was lost is
found on the next read, not sent twice.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from procedures.csr_checks import CLIENT, SERVING, CsrView, classify, known_nodes, not_ready
from procedures.i18n import Msg, msg
from procedures.kube import API_DOWN, call, call_if_present, status_of, tolerant
from procedures.steps import Step, StepContext, StepFailed, WaitUntil

PANEL = "csr"
MACHINES = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machines")
ROUND_RETRY = 60.0
"""How long one round's API calls wait out transient errors (a kube-apiserver restart included)."""
DECISIONS = ("Approved", "Denied")
DECIDE_ATTEMPTS = 3
"""Fresh reads before an approval gives up on a CSR that keeps changing under it."""


def approve_csrs(step_id: str, section: str, timeout: float = 1800.0, interval: float = 2.0) -> Step:
    return WaitUntil(
        id=step_id,
        title=msg("csr.step.title"),
        section=section,
        condition=tolerant(ROUND_RETRY, _round),
        interval=interval,
        timeout=timeout,
    )


def _round(ctx: StepContext) -> tuple[bool, Msg]:
    api = ctx.kube()
    certificates = client.CertificatesV1Api(api)
    views, nodes = _look(ctx, api, certificates)
    requests = ctx.take_requests()
    if requests:
        by_uid = {v.uid: v for v in views}
        for index, request in enumerate(requests):
            try:
                _carry_out(ctx, certificates, request, by_uid)
            except StepFailed as down:
                if down.summary.key in API_DOWN:
                    _not_carried_out(ctx, requests[index:], down.summary)
                raise
        views, nodes = _look(ctx, api, certificates)
    upi = ctx.cluster.platform == "user-provisioned"
    pending = [v for v in views if v.pending]
    offered = [v for v in pending if v.wave == CLIENT or (v.wave == SERVING and upi) or not v.valid]
    watched = [v for v in pending if v.valid and v.wave == SERVING and not upi]
    missing = not_ready(nodes)
    ctx.publish(
        PANEL,
        {
            "offered": [v.to_json() for v in offered],
            "watched": [v.to_json() for v in watched],
            "not_ready": missing,
            "platform": ctx.cluster.platform,
        },
    )
    valid_pending = [v.name for v in pending if v.valid]
    flagged = [v.name for v in pending if not v.valid]
    if not valid_pending and not missing:
        return True, msg("csr.done", flagged=", ".join(flagged) or "-")
    return False, msg(
        "csr.waiting",
        pending=", ".join(valid_pending) or "-",
        not_ready=", ".join(missing) or "-",
        flagged=", ".join(flagged) or "-",
    )


def _look(
    ctx: StepContext, api: client.ApiClient, certificates: client.CertificatesV1Api
) -> tuple[list[CsrView], list[dict[str, Any]]]:
    nodes = api.sanitize_for_serialization(call(ctx.cluster, client.CoreV1Api(api).list_node).items)
    machines = _machines(ctx, api)
    known = known_nodes(nodes, machines)
    csrs = api.sanitize_for_serialization(
        call(ctx.cluster, certificates.list_certificate_signing_request).items
    )
    return [classify(c, known) for c in csrs], nodes


def _machines(ctx: StepContext, api: client.ApiClient) -> list[dict[str, Any]]:
    """Machines, where the Machine API exists (user-provisioned clusters may have none)."""
    found = call_if_present(
        ctx.cluster, client.CustomObjectsApi(api).list_namespaced_custom_object, *MACHINES
    )
    return list((found or {}).get("items") or [])


def _carry_out(
    ctx: StepContext,
    certificates: client.CertificatesV1Api,
    request: dict[str, Any],
    by_uid: dict[str, CsrView],
) -> None:
    user, action = request["user"], request["action"]
    if action == "approve_all":
        chosen = [by_uid[uid] for uid in request["uids"] if uid in by_uid]
        for view in chosen:
            if view.pending and view.valid:
                _decide(ctx, certificates, view, user, approve=True)
        if not chosen:
            ctx.tell(user, "note", msg("csr.nothing_left"))
        return
    view = by_uid.get(request["uid"])
    if view is None:
        ctx.tell(user, "note", msg("csr.gone", csr=request["csr"]))
    elif not view.pending:
        ctx.tell(
            user,
            "note",
            msg("csr.already_decided", csr=view.name, state="Approved" if view.approved else "Denied"),
        )
    elif action == "approve" and not view.valid:
        ctx.tell(user, "note", msg("csr.flagged_needs_confirmation", csr=view.name))
    else:
        _decide(ctx, certificates, view, user, approve=action != "deny")


def _not_carried_out(ctx: StepContext, requests: list[dict[str, Any]], reason: Msg) -> None:
    """Clicks taken from the queue that the API did not let drbot carry out: their people click again."""
    for request in requests:
        ctx.tell(request["user"], "note", msg("csr.not_carried_out", reason=reason.to_json()))


def _decide(
    ctx: StepContext, certificates: client.CertificatesV1Api, view: CsrView, user: str, approve: bool
) -> None:
    """Append the Approved or Denied condition through the approval subresource, on a fresh read. A
    CSR found decided is not decided again: by this very click (an attempt whose answer was lost) it
    is reported as done, by someone else the clicker is told."""
    for _ in range(DECIDE_ATTEMPTS):
        current = call(ctx.cluster, certificates.read_certificate_signing_request, view.name)
        if current.metadata.uid != view.uid:
            ctx.tell(user, "note", msg("csr.gone", csr=view.name))
            return
        decided = next(
            (c for c in (current.status and current.status.conditions) or [] if c.type in DECISIONS), None
        )
        if decided is not None:
            if decided.message == _decision_message(user, approve):
                _report(ctx, view, user, approve)
            else:
                ctx.tell(user, "note", msg("csr.already_decided", csr=view.name, state=decided.type))
            return
        condition = client.V1CertificateSigningRequestCondition(
            type="Approved" if approve else "Denied",
            status="True",
            reason="DrbotApprove" if approve else "DrbotDeny",
            message=_decision_message(user, approve),
        )
        current.status = current.status or client.V1CertificateSigningRequestStatus()
        current.status.conditions = [*(current.status.conditions or []), condition]
        try:
            call(ctx.cluster, certificates.replace_certificate_signing_request_approval, view.name, current)
        except StepFailed as failure:
            if status_of(failure) == 409:
                continue  # changed since the read, maybe by this very approval: look again
            raise
        _report(ctx, view, user, approve)
        return
    ctx.tell(user, "note", msg("csr.changed", csr=view.name))


def _decision_message(user: str, approve: bool) -> str:
    return f"{'Approved' if approve else 'Denied'} by {user} through drbot"


def _report(ctx: StepContext, view: CsrView, user: str, approve: bool) -> None:
    if not approve:
        ctx.tell(user, "rejection", msg("csr.denied", csr=view.name, node=view.node or "?"))
    elif view.problems:
        ctx.tell(
            user,
            "approval",
            msg(
                "csr.approved_flagged",
                csr=view.name,
                node=view.node or "?",
                problem=view.problems[0].to_json(),
            ),
        )
    else:
        ctx.tell(user, "approval", msg("csr.approved", csr=view.name, node=view.node or "?", wave=view.wave))
