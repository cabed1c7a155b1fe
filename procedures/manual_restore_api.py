"""The manual restore's work through the Kubernetes API (5.4.2.3 step 10 and the verification): the OVN
databases of every node, and the cluster once the API answers again.

Every call goes through procedures.kube.call, so an API that is down reads as a plain message.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from procedures.i18n import msg
from procedures.kube import call
from procedures.manual_restore_host import HEALTH_TIMEOUT, OVN_WIPE, POLL, etcd_healthy, revision
from procedures.steps import Outcome, StepContext, StepFailed, all_ok

OVN_NAMESPACE = "openshift-ovn-kubernetes"
OVN_READY_TIMEOUT = 600.0


def api_when_up(ctx: StepContext) -> Any:
    """The API client once the API answers: it comes back a while after kube-apiserver starts."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while True:
        try:
            api = ctx.kube()
            call(ctx.cluster, client.VersionApi(api).get_code)
            return api
        except StepFailed as failure:
            if time.monotonic() > deadline or ctx.aborted() or not ctx.cluster.kubeconfig:
                raise
            ctx.progress(failure.summary)
            time.sleep(POLL)


def wipe_ovn(ctx: StepContext) -> Outcome:
    """For each node: wipe its OVN databases, delete its ovnkube-node pod, wait until the new one is ready.

    The runbook reaches each node with `oc debug node/<n> -- chroot /host`; for the control-plane hosts
    drbot runs the same command over SSH. Other nodes are listed for the operator to do the same.
    """
    if not ctx.cluster.kubeconfig:
        raise StepFailed(msg("manual_restore.ovn_no_api", cluster=ctx.cluster.name, command=OVN_WIPE))
    core = client.CoreV1Api(api_when_up(ctx))
    nodes = [n.metadata.name for n in call(ctx.cluster, core.list_node).items]
    by_name = {h.name: h for h in ctx.cluster.hosts}
    reachable = [by_name[n] for n in nodes if n in by_name]
    results = ctx.run(reachable, OVN_WIPE, sudo=True, timeout=120)
    failed = [r for r in results if not r.ok]
    if failed:
        return all_ok(ctx, failed, msg("step.ok"))
    for node in nodes:
        call(
            ctx.cluster,
            core.delete_collection_namespaced_pod,
            OVN_NAMESPACE,
            label_selector="app=ovnkube-node",
            field_selector=f"spec.nodeName={node}",
        )
    deadline = time.monotonic() + OVN_READY_TIMEOUT
    while True:
        waiting = [n for n in nodes if not _ovnkube_ready(ctx, core, n)]
        if not waiting:
            break
        if time.monotonic() > deadline or ctx.aborted():
            return Outcome(False, msg("manual_restore.ovn_not_ready", nodes=", ".join(waiting)))
        ctx.progress(msg("manual_restore.ovn_waiting", nodes=", ".join(waiting)))
        time.sleep(POLL)
    others = [n for n in nodes if n not in by_name]
    return Outcome(
        True,
        msg(
            "manual_restore.ovn_done",
            hosts=", ".join(h.name for h in reachable) or "-",
            nodes=len(nodes),
            others=", ".join(others) or "-",
            command=f"oc debug node/<node> -- chroot /host /bin/bash -c '{OVN_WIPE}'",
        ),
    )


def _ovnkube_ready(ctx: StepContext, core: client.CoreV1Api, node: str) -> bool:
    pods = call(
        ctx.cluster,
        core.list_namespaced_pod,
        OVN_NAMESPACE,
        label_selector="app=ovnkube-node",
        field_selector=f"spec.nodeName={node}",
    ).items
    return any(
        c.type == "ContainersReady" and c.status == "True"
        for p in pods
        if p.metadata.deletion_timestamp is None
        for c in (p.status.conditions or [])
    )


def verify(ctx: StepContext) -> Outcome:
    """The API answers, etcd has every member healthy, and which revision it is at next to the snapshot's."""
    nodes = call(ctx.cluster, client.CoreV1Api(api_when_up(ctx)).list_node).items
    health = etcd_healthy(ctx)
    if not health.ok:
        return health
    backup = ctx.vars["backup"]
    return Outcome(
        True,
        msg(
            "manual_restore.verified",
            members=len(ctx.cluster.hosts),
            nodes=len(nodes),
            revision=revision(ctx),
            snapshot_revision=backup.get("revision"),
            snapshot=backup["snapshot"],
        ),
        details=health.details,
    )
