"""The restore's work through the Kubernetes API (5.4.2.2 steps 9–24): nodes, OVN-Kubernetes, machines,
the static-pod operators and the workloads to restart.

Every call goes through procedures.kube.call: transient errors are retried within the step's bound
(the API blips and restarts until the forced redeployments finish), and an API that stays down reads
as a plain message. Every step that changes something looks at the cluster before it acts, so it can
run again after an interruption at any point: what is already done is not done twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from procedures.clusters import Host
from procedures.i18n import Msg, msg
from procedures.kube import API_DOWN, bounded, call, call_if_present, create_once, deadline
from procedures.kube import tolerant as tolerant_within
from procedures.restore_host import clear_pki_command, etcd_on_recovery_host, move_pki_command, non_recovery
from procedures.steps import Outcome, StepContext, StepFailed

OPERATOR = ("operator.openshift.io", "v1")
MACHINE_API = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machines")
CPMS = ("machine.openshift.io", "v1", "openshift-machine-api", "controlplanemachinesets", "cluster")
OVN_NAMESPACE = "openshift-ovn-kubernetes"
MASTER_ROLE = "node-role.kubernetes.io/master"
QUORUM_GUARD = "useUnsupportedUnsafeNonHANonProductionUnstableEtcd"
MERGE = "application/merge-patch+json"
NODE_SETTLE = 40.0
"""kube-controller-manager's node-monitor-grace-period: after it, a node that is not posting status is
NotReady, so "nodes that stay NotReady" can be told apart from nodes the snapshot still shows Ready."""
MACHINE_WAIT = 1800.0
MACHINE_POLL = 2.0
"""Seconds between looks at a Machine that is being deleted or provisioned."""
STUCK_TERMINATING = 60.0
"""An ovnkube pod still Terminating after this long is "stuck" in the runbook's sense (step 15)."""


API_RETRY = 300.0
"""How long a step's API calls wait out an API that is briefly down, as it is while etcd rolls to a
new revision or the only kube-apiserver restarts."""
POLL_RETRY = 30.0
"""How long one poll of a wait retries the API before that poll counts as "not yet"."""


def tolerant(
    condition: Callable[[StepContext], tuple[bool, Msg]],
) -> Callable[[StepContext], tuple[bool, Msg]]:
    """A WaitUntil condition for which an API that does not answer means "not yet", not failure."""
    return tolerant_within(POLL_RETRY, condition)


def retrying(step: Callable[[StepContext], Outcome]) -> Callable[[StepContext], Outcome]:
    """A Call whose API calls wait out an API that is briefly down, for at most API_RETRY seconds."""
    return bounded(API_RETRY, step)


def _core(ctx: StepContext) -> client.CoreV1Api:
    return client.CoreV1Api(ctx.kube())


def _custom(ctx: StepContext) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(ctx.kube())


def plain(ctx: StepContext, obj: Any) -> Any:
    return ctx.kube().sanitize_for_serialization(obj)


# --- nodes (step 9) ----------------------------------------------------------------------------------


def node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_addresses(node: Mapping[str, Any]) -> set[str]:
    return {a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []}


def node_of_host(nodes: Sequence[Mapping[str, Any]], host: Host) -> str | None:
    """The Node of a control-plane host: the same name (short or full), or one of its addresses."""
    for node in nodes:
        name = node["metadata"]["name"]
        if name == host.name or name.split(".")[0] == host.name.split(".")[0]:
            return str(name)
    for node in nodes:
        if host.address in node_addresses(node):
            return str(node["metadata"]["name"])
    return None


def list_nodes(ctx: StepContext) -> list[dict[str, Any]]:
    return [plain(ctx, n) for n in call(ctx.cluster, _core(ctx).list_node).items]


def nodes_reported(ctx: StepContext) -> tuple[bool, Msg]:
    """`oc get nodes -w` until the API answers and the kubelets had node-monitor-grace-period to report."""
    try:
        nodes = list_nodes(ctx)
    except StepFailed as down:
        if down.summary.key not in API_DOWN:
            raise  # the API answered, and said no: waiting will not change that
        return False, msg("kube.api_waiting", reason=down.summary.to_json())
    waited = time.time() - float(ctx.vars.get("restored_at") or 0)
    not_ready = sorted(n["metadata"]["name"] for n in nodes if not node_ready(n))
    if waited < NODE_SETTLE:
        return False, msg(
            "restore.nodes_settling",
            seconds=int(NODE_SETTLE - waited),
            ready=len(nodes) - len(not_ready),
            total=len(nodes),
        )
    return True, msg("restore.nodes_reported", total=len(nodes), not_ready=", ".join(not_ready) or "-")


def clear_kubelet_pki(ctx: StepContext) -> Outcome:
    """Delete the PEM files in /var/lib/kubelet/pki on every control-plane host whose node is NotReady."""
    nodes = list_nodes(ctx)
    not_ready = [n for n in nodes if not node_ready(n)]
    hosts = [h for h in ctx.cluster.hosts if node_of_host(not_ready, h)]
    others = sorted(
        n["metadata"]["name"] for n in not_ready if not any(node_of_host([n], h) for h in ctx.cluster.hosts)
    )
    if hosts:
        results = ctx.run(hosts, clear_pki_command(), sudo=True, timeout=60)
        failed = [r for r in results if not r.ok]
        if failed:
            raise StepFailed(
                msg(
                    "restore.pki_failed",
                    hosts=", ".join(f"{r.host} ({r.error or r.exit_code})" for r in failed),
                )
            )
    return Outcome(
        True,
        msg(
            "restore.pki_cleared",
            hosts=", ".join(h.name for h in hosts) or "-",
            others=", ".join(others) or "-",
        ),
        vars={"pki_cleared": [h.name for h in hosts], "not_ready_elsewhere": others},
    )


# --- OVN-Kubernetes (steps 13–15) ----------------------------------------------------------------------


def delete_non_recovery_nodes(ctx: StepContext) -> Outcome:
    """`oc delete node <non-recovery-1> <non-recovery-2>`, remembering their IPs for the next check."""
    nodes = list_nodes(ctx)
    deleted, ips = [], []
    for host in non_recovery(ctx):
        name = node_of_host(nodes, host)
        ips.append(host.address)
        if name is None:
            continue
        node = next(n for n in nodes if n["metadata"]["name"] == name)
        ips.extend(sorted(node_addresses(node) - {name, host.address}))
        call_if_present(ctx.cluster, _core(ctx).delete_node, name)
        deleted.append(name)
    return Outcome(
        True,
        msg("restore.nodes_deleted", nodes=", ".join(deleted) or "-"),
        vars={"deleted_nodes": deleted, "deleted_ips": sorted(set(ips))},
    )


def ovn_control_plane(ctx: StepContext) -> tuple[str, dict[str, Any] | None]:
    """(app label, object): ds/ovnkube-master up to 4.13, deploy/ovnkube-control-plane with interconnect."""
    apps = client.AppsV1Api(ctx.kube())
    master = call_if_present(ctx.cluster, apps.read_namespaced_daemon_set, "ovnkube-master", OVN_NAMESPACE)
    if master is not None:
        return "ovnkube-master", plain(ctx, master)
    control = call_if_present(
        ctx.cluster, apps.read_namespaced_deployment, "ovnkube-control-plane", OVN_NAMESPACE
    )
    return "ovnkube-control-plane", plain(ctx, control) if control is not None else None


def ips_referenced(obj: Any, ips: Sequence[str]) -> list[str]:
    """`oc get ds/ovnkube-master -o yaml | grep -E '<ip1>|<ip2>'`: which IPs still appear anywhere in it."""
    text = repr(obj)
    return [ip for ip in ips if ip and ip in text]


def ovn_forgot_ips(ctx: StepContext) -> tuple[bool, Msg]:
    app, obj = ovn_control_plane(ctx)
    if obj is None:
        return True, msg("restore.ovn_no_control_plane")
    left = ips_referenced(obj, ctx.vars.get("deleted_ips") or [])
    if not left:
        return True, msg("restore.ovn_ips_gone", app=app)
    return False, msg("restore.ovn_ips_left", app=app, ips=", ".join(left))


def _pods(ctx: StepContext, selector: str) -> list[dict[str, Any]]:
    found = call(ctx.cluster, _core(ctx).list_namespaced_pod, OVN_NAMESPACE, label_selector=selector)
    return [plain(ctx, p) for p in found.items]


def delete_pods(ctx: StepContext, app: str) -> int:
    """Delete the app's pods that are not being deleted already; one that is gone by the time it is
    deleted (an earlier attempt whose answer was lost) is fine. Returns how many were asked to go."""
    pods = [p for p in _pods(ctx, f"app={app}") if not p["metadata"].get("deletionTimestamp")]
    for pod in pods:
        call_if_present(ctx.cluster, _core(ctx).delete_namespaced_pod, pod["metadata"]["name"], OVN_NAMESPACE)
    return len(pods)


def restart_ovn_control_plane(ctx: StepContext) -> Outcome:
    """`oc delete pods -l app=ovnkube-master -n openshift-ovn-kubernetes` (ovnkube-control-plane on 4.14+)."""
    app, _ = ovn_control_plane(ctx)
    count = delete_pods(ctx, app)
    return Outcome(True, msg("restore.pods_deleted", count=count, app=app), vars={"ovn_app": app})


def pod_phase(pod: Mapping[str, Any]) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pods_running(ctx: StepContext, app: str) -> tuple[bool, Msg]:
    pods = _pods(ctx, f"app={app}")
    states = sorted(f"{p['metadata']['name']} {pod_phase(p)}" for p in pods)
    if pods and all(pod_phase(p) == "Running" for p in pods):
        return True, msg("restore.pods_running", app=app, count=len(pods))
    return False, msg("restore.pods_waiting", app=app, pods=", ".join(states) or "-")


def ovn_control_plane_running(ctx: StepContext) -> tuple[bool, Msg]:
    return pods_running(ctx, str(ctx.vars.get("ovn_app") or "ovnkube-master"))


def restart_ovnkube_node_pods(ctx: StepContext) -> Outcome:
    """`oc get pods -o name | grep ovnkube-node | while read p; do oc delete $p; done`."""
    count = delete_pods(ctx, "ovnkube-node")
    return Outcome(
        True,
        msg("restore.pods_deleted", count=count, app="ovnkube-node"),
        vars={"ovn_restarted_at": time.time()},
    )


def stuck_terminating(
    pods: Sequence[Mapping[str, Any]], now: datetime, after: float
) -> list[Mapping[str, Any]]:
    """Pods whose deletion was asked for more than `after` seconds ago and that still exist."""
    stuck = []
    for pod in pods:
        since = pod["metadata"].get("deletionTimestamp")
        if not since:
            continue
        asked = (
            since
            if isinstance(since, datetime)
            else datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        )
        if (now - asked).total_seconds() >= after:
            stuck.append(pod)
    return stuck


def ovnkube_node_settled(ctx: StepContext) -> tuple[bool, Msg]:
    """Every ovnkube-node pod Running, or stuck Terminating long enough to be handled by the next step."""
    pods = _pods(ctx, "app=ovnkube-node")
    stuck = stuck_terminating(pods, datetime.now(UTC), STUCK_TERMINATING)
    pending = [p for p in pods if pod_phase(p) != "Running" and p not in stuck]
    if pods and not pending:
        return True, msg("restore.ovn_nodes_settled", running=len(pods) - len(stuck), stuck=len(stuck))
    states = ", ".join(sorted(f"{p['metadata']['name']} {pod_phase(p)}" for p in pending)) or "-"
    return False, msg("restore.pods_waiting", app="ovnkube-node", pods=states)


def handle_stuck_terminating(ctx: StepContext) -> Outcome:
    """For each node with an OVN pod stuck Terminating: delete the node, move the kubelet's PEM files
    aside and restart the kubelet (control-plane hosts, over SSH); other nodes are listed for a person."""
    pods = _pods(ctx, "app=ovnkube-node")
    stuck = stuck_terminating(pods, datetime.now(UTC), STUCK_TERMINATING)
    stuck_nodes = sorted({str(p["spec"].get("nodeName") or "") for p in stuck} - {""})
    nodes = [n for n in list_nodes(ctx) if n["metadata"]["name"] in stuck_nodes]
    hosts = [h for h in ctx.cluster.hosts if node_of_host(nodes, h)]
    for name in stuck_nodes:
        call_if_present(ctx.cluster, _core(ctx).delete_node, name)
    if hosts:
        command = f"{move_pki_command()}; systemctl restart kubelet.service"
        results = ctx.run(hosts, command, sudo=True, timeout=120, serial=True)
        failed = [r for r in results if not r.ok]
        if failed:
            raise StepFailed(
                msg(
                    "restore.pki_failed",
                    hosts=", ".join(f"{r.host} ({r.error or r.exit_code})" for r in failed),
                )
            )
    on_hosts = {node_of_host(nodes, h) for h in hosts}
    manual = [n for n in stuck_nodes if n not in on_hosts]
    return Outcome(
        True,
        msg(
            "restore.stuck_handled",
            nodes=", ".join(stuck_nodes) or "-",
            manual=", ".join(manual) or "-",
        ),
        vars={"stuck_nodes": stuck_nodes},
    )


# --- machines (step 16) --------------------------------------------------------------------------------


def list_machines(ctx: StepContext) -> list[dict[str, Any]]:
    group, version, namespace, plural = MACHINE_API
    found = call(ctx.cluster, _custom(ctx).list_namespaced_custom_object, group, version, namespace, plural)
    return list(found.get("items", []))


def is_master_machine(machine: Mapping[str, Any]) -> bool:
    labels = machine["metadata"].get("labels") or {}
    return labels.get("machine.openshift.io/cluster-api-machine-role") == "master"


def machine_of_host(machines: Sequence[Mapping[str, Any]], host: Host) -> Mapping[str, Any] | None:
    """The control-plane Machine of a host: its nodeRef names the host, or it has the host's address."""
    for machine in machines:
        status = machine.get("status") or {}
        node = (status.get("nodeRef") or {}).get("name", "")
        addresses = {a.get("address") for a in status.get("addresses") or []}
        if node and (node == host.name or node.split(".")[0] == host.name.split(".")[0]):
            return machine
        if host.address in addresses:
            return machine
    return None


def next_master_name(old: str, taken: set[str]) -> str:
    """…-master-0 becomes …-master-3 (the next free index), as the runbook shows."""
    stem = old.rsplit("-", 1)[0]
    index = 3
    while f"{stem}-{index}" in taken:
        index += 1
    return f"{stem}-{index}"


def replacement(old: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The edited copy of `oc get machine <old> -o yaml`: no status, spec.providerID, annotations,
    generation, resourceVersion, uid or selfLink; the new name."""
    meta = old["metadata"]
    return {
        "apiVersion": old.get("apiVersion", "machine.openshift.io/v1beta1"),
        "kind": old.get("kind", "Machine"),
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace", MACHINE_API[2]),
            "labels": dict(meta.get("labels") or {}),
        },
        "spec": {k: v for k, v in (old.get("spec") or {}).items() if k != "providerID"},
    }


def machines_to_replace(machines: Sequence[Mapping[str, Any]], ctx: StepContext) -> list[Mapping[str, Any]]:
    masters = [m for m in machines if is_master_machine(m)]
    found = []
    for host in non_recovery(ctx):
        machine = machine_of_host(masters, host)
        if machine is not None:
            found.append(machine)
    return found


def plan_machines(ctx: StepContext) -> Outcome:
    """`oc get machine <old> -o yaml > new-master-machine.yaml`, edited, for each lost control-plane
    machine: each replacement is decided and kept with the run before any machine is deleted, so a
    re-creation interrupted after a delete still knows what to create."""
    machines = list_machines(ctx)
    taken = {str(m["metadata"]["name"]) for m in machines}
    before = sorted(taken)
    plan = []
    for old in machines_to_replace(machines, ctx):
        old_name = str(old["metadata"]["name"])
        new_name = next_master_name(old_name, taken)
        taken.add(new_name)
        plan.append({"old": old_name, "new": new_name, "machine": replacement(old, new_name)})
    return Outcome(
        True,
        msg("restore.machines_planned", machines=plan_text(plan)),
        vars={"machine_plan": plan, "machines_before": before},
    )


def plan_text(plan: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{item['old']} → {item['new']}" for item in plan) or "-"


def machine_prompt(ctx: StepContext) -> Msg:
    return msg(
        "restore.machines_prompt",
        machines=plan_text(ctx.vars.get("machine_plan") or []),
        recovery=ctx.vars["recovery_host"],
    )


def _cpms_active(ctx: StepContext) -> bool:
    group, version, namespace, plural, name = CPMS
    cpms = call_if_present(
        ctx.cluster, _custom(ctx).get_namespaced_custom_object, group, version, namespace, plural, name
    )
    return bool(cpms) and (cpms.get("spec") or {}).get("state") == "Active"


def recreate_machines(ctx: StepContext) -> Outcome:
    """Delete and re-create each lost control-plane Machine of the plan, one at a time, never the
    recovery host's. It converges when run again after an interruption anywhere: an old machine
    already gone is not looked for, a replacement that exists is not created twice, and an old machine
    is deleted only once its replacement is kept in the run (plan-machines)."""
    plan = ctx.vars.get("machine_plan") or []
    with deadline(MACHINE_WAIT * max(1, len(plan)), ctx):
        automatic = _cpms_active(ctx)
        known = set(ctx.vars.get("machines_before") or [])
        replaced = []
        for item in plan:
            new_name = _replace(ctx, item, automatic, known)
            known.add(new_name)
            replaced.append(f"{item['old']} → {new_name}")
    return Outcome(
        True,
        msg("restore.machines_replaced", machines="; ".join(replaced) or "-"),
        vars={"machines_replaced": replaced},
    )


def _replace(ctx: StepContext, item: Mapping[str, Any], automatic: bool, known: set[str]) -> str:
    """`oc delete machine <old>`, then `oc apply -f new-master-machine.yaml` (or, with an active
    control-plane machine set, wait for the one it makes); returns the replacement's name once Running.
    `known`: machines that are not this one's replacement."""
    group, version, namespace, plural = MACHINE_API
    api = _custom(ctx)
    old_name = str(item["old"])
    if old_name in _machine_names(ctx):
        ctx.progress(msg("restore.machine_deleting", machine=old_name))
        call_if_present(
            ctx.cluster, api.delete_namespaced_custom_object, group, version, namespace, plural, old_name
        )
    _until(
        ctx, lambda: old_name not in _machine_names(ctx), msg("restore.machine_deleting", machine=old_name)
    )
    if automatic:
        _until(
            ctx,
            lambda: _newer_master(ctx, known) is not None,
            msg("restore.machine_auto", machine=old_name),
        )
        new_name = str(_newer_master(ctx, known))
    else:
        new_name = str(item["new"])
        machine = item["machine"]
        created = create_once(
            ctx.cluster, api.create_namespaced_custom_object, group, version, namespace, plural, machine
        )
        if not created:
            ctx.progress(msg("restore.machine_exists", machine=new_name))
    _until(
        ctx,
        lambda: _phase(ctx, new_name) == "Running",
        msg("restore.machine_provisioning", machine=new_name),
    )
    return new_name


def _machine_names(ctx: StepContext) -> set[str]:
    return {str(m["metadata"]["name"]) for m in list_machines(ctx)}


def _newer_master(ctx: StepContext, known: set[str]) -> str | None:
    for machine in list_machines(ctx):
        if is_master_machine(machine) and machine["metadata"]["name"] not in known:
            return str(machine["metadata"]["name"])
    return None


def _phase(ctx: StepContext, name: str) -> str:
    for machine in list_machines(ctx):
        if machine["metadata"]["name"] == name:
            return str((machine.get("status") or {}).get("phase") or "")
    return ""


def _until(ctx: StepContext, done: Callable[[], bool], waiting: Msg, timeout: float = MACHINE_WAIT) -> None:
    until = time.monotonic() + timeout
    while not done():
        if time.monotonic() > until:
            raise StepFailed(msg("step.wait_timed_out", seconds=int(timeout), last=waiting.to_json()))
        if ctx.aborted():
            raise StepFailed(msg("step.wait_aborted"))
        ctx.progress(waiting)
        time.sleep(MACHINE_POLL)


def upi_prompt(ctx: StepContext) -> Msg:
    others = ", ".join(h.name for h in non_recovery(ctx))
    return msg("restore.upi_prompt", hosts=others, recovery=ctx.vars["recovery_host"])


def control_plane_nodes_ready(ctx: StepContext) -> tuple[bool, Msg]:
    nodes = [n for n in list_nodes(ctx) if MASTER_ROLE in (n["metadata"].get("labels") or {})]
    ready = sorted(n["metadata"]["name"] for n in nodes if node_ready(n))
    expected = len(ctx.cluster.hosts)
    if len(ready) >= expected:
        return True, msg("restore.masters_ready", count=len(ready), nodes=", ".join(ready))
    return False, msg(
        "restore.masters_waiting", count=len(ready), expected=expected, nodes=", ".join(ready) or "-"
    )


# --- static-pod operators (steps 17–22) ---------------------------------------------------------------


def _operator(ctx: StepContext, plural: str) -> dict[str, Any]:
    return dict(call(ctx.cluster, _custom(ctx).get_cluster_custom_object, *OPERATOR, plural, "cluster"))


def _patch(ctx: StepContext, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return dict(
        call(
            ctx.cluster,
            _custom(ctx).patch_cluster_custom_object,
            *OPERATOR,
            plural,
            "cluster",
            body,
            _content_type=MERGE,
        )
    )


def quorum_guard(enabled: bool) -> Any:
    """`oc patch etcd/cluster --type=merge` unsupportedConfigOverrides on (guard off) or null (guard on);
    a guard already as wanted (an earlier attempt whose answer was lost) is left alone."""

    def step(ctx: StepContext) -> Outcome:
        overrides = None if enabled else {QUORUM_GUARD: True}
        current = (_operator(ctx, "etcds").get("spec") or {}).get("unsupportedConfigOverrides")
        if _guard_as_wanted(current, enabled):
            return Outcome(True, msg("restore.guard_on" if enabled else "restore.guard_off"))
        patched = _patch(ctx, "etcds", {"spec": {"unsupportedConfigOverrides": overrides}})
        now = (patched.get("spec") or {}).get("unsupportedConfigOverrides")
        if enabled and now:
            raise StepFailed(msg("restore.guard_still_off", overrides=str(now)))
        return Outcome(True, msg("restore.guard_on" if enabled else "restore.guard_off"))

    return step


def _guard_as_wanted(overrides: Any, enabled: bool) -> bool:
    if enabled:
        return not overrides
    return isinstance(overrides, Mapping) and overrides.get(QUORUM_GUARD) is True


def recovery_reason(restored_at: float) -> str:
    """`recovery-$(date --rfc-3339=ns)` for the moment cluster-restore.sh finished: unique to this
    recovery, so the operator cuts a new revision, and the same when the step runs again, so that run
    sees its patch is already in."""
    when = datetime.fromtimestamp(restored_at, UTC)
    return f"recovery-{when.strftime('%Y-%m-%d %H:%M:%S')}.{when.microsecond * 1000:09d}+00:00"


def force_redeployment(plural: str) -> Any:
    """`oc patch <operator> cluster -p '{"spec": {"forceRedeploymentReason": "recovery-…"}}' --type=merge`;
    when this recovery's reason is already there, it is not patched again (that would cut a second
    revision and restart every kube-apiserver once more)."""

    def step(ctx: StepContext) -> Outcome:
        before = _operator(ctx, plural)
        reason = recovery_reason(float(ctx.vars.get("restored_at") or time.time()))
        revision = revision_before(before, reason)
        if (before.get("spec") or {}).get("forceRedeploymentReason") != reason:
            _patch(ctx, plural, {"spec": {"forceRedeploymentReason": reason}})
        return Outcome(
            True,
            msg("restore.forced", operator=plural, reason=reason, revision=revision),
            vars={f"{plural}_before": revision},
        )

    return step


def revision_before(obj: Mapping[str, Any], reason: str) -> int:
    """The latest revision before `reason` was set: the current one, or the one before it when the
    operator has already cut a revision for the reason (it has seen the spec that carries it)."""
    latest = int((obj.get("status") or {}).get("latestAvailableRevision") or 0)
    spec = obj.get("spec") or {}
    observed = int((obj.get("status") or {}).get("observedGeneration") or 0)
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if spec.get("forceRedeploymentReason") == reason and generation and observed >= generation:
        return latest - 1
    return latest


def installer_state(obj: Mapping[str, Any]) -> tuple[int, str, str]:
    """(latestAvailableRevision, NodeInstallerProgressing reason, message): the runbook's jsonpath query."""
    status = obj.get("status") or {}
    condition = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "NodeInstallerProgressing"), {}
    )
    return (
        int(status.get("latestAvailableRevision") or 0),
        str(condition.get("reason") or ""),
        str(condition.get("message") or ""),
    )


def revision_cut(plural: str) -> Any:
    """The operator saw the new reason: latestAvailableRevision went past the one before the patch."""

    def condition(ctx: StepContext) -> tuple[bool, Msg]:
        latest, _, message = installer_state(_operator(ctx, plural))
        before = int(ctx.vars.get(f"{plural}_before") or 0)
        if latest > before:
            return True, msg("restore.revision_cut", operator=plural, revision=latest)
        return False, msg("restore.revision_waiting", operator=plural, revision=before, message=message)

    return condition


def at_latest_revision(plural: str) -> Any:
    """NodeInstallerProgressing says AllNodesAtLatestRevision, at a revision newer than before the patch."""

    def condition(ctx: StepContext) -> tuple[bool, Msg]:
        latest, reason, message = installer_state(_operator(ctx, plural))
        before = int(ctx.vars.get(f"{plural}_before") or 0)
        if reason == "AllNodesAtLatestRevision" and latest > before:
            return True, msg("restore.rollout_done", operator=plural, message=message)
        return False, msg("restore.rollout_waiting", operator=plural, reason=reason or "-", message=message)

    return condition


# --- the end (steps 23–24) ----------------------------------------------------------------------------


def single_member(ctx: StepContext) -> tuple[bool, Msg]:
    """Step 12: `crictl ps | grep etcd` shows etcd Running on the recovery host, and
    `oc -n openshift-etcd get pods -l k8s-app=etcd` exactly one etcd pod, Running (Pending or more
    than one: wait). When etcdctl answers in the container, it must list one member too."""
    running, members, host = etcd_on_recovery_host(ctx)
    if not running:
        return False, msg("restore.etcd_not_running", host=host)
    if members is not None and len(members) != 1:
        names = ", ".join(m["name"] or m["id"] for m in members)
        return False, msg("restore.etcd_members_waiting", count=len(members), expected=1, names=names)
    try:
        pods = _etcd_pods(ctx)
    except StepFailed as down:
        if down.summary.key not in API_DOWN:
            raise  # the API answered, and said no: waiting will not change that
        return False, msg("kube.api_waiting", reason=down.summary.to_json())
    states = ", ".join(sorted(f"{p['metadata']['name']} {pod_phase(p)}" for p in pods)) or "-"
    if len(pods) == 1 and pod_phase(pods[0]) == "Running":
        return True, msg("restore.single_etcd", host=host, pods=states)
    return False, msg("restore.etcd_pods_waiting", expected=1, pods=states)


def _etcd_pods(ctx: StepContext) -> list[dict[str, Any]]:
    found = call(ctx.cluster, _core(ctx).list_namespaced_pod, "openshift-etcd", label_selector="k8s-app=etcd")
    return [plain(ctx, p) for p in found.items if "guard" not in p.metadata.name]


def etcd_pods_running(ctx: StepContext) -> tuple[bool, Msg]:
    """`oc -n openshift-etcd get pods -l k8s-app=etcd`: one Running pod per control-plane host."""
    pods = _etcd_pods(ctx)
    running = sorted(p["metadata"]["name"] for p in pods if pod_phase(p) == "Running")
    expected = len(ctx.cluster.hosts)
    if len(running) == expected and len(pods) == expected:
        return True, msg("restore.etcd_pods", count=len(running), pods=", ".join(running))
    states = ", ".join(sorted(f"{p['metadata']['name']} {pod_phase(p)}" for p in pods)) or "-"
    return False, msg("restore.etcd_pods_waiting", expected=expected, pods=states)


OPENSHIFT_PREFIXES = ("openshift", "kube-")


def workloads_to_restart(items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """`oc -n NS rollout restart KIND/NAME` for every workload that holds API state: routers, operators,
    third-party controllers. OpenShift's namespaces first, then the rest."""
    lines = []
    for kind, obj in items:
        meta = obj["metadata"]
        lines.append(
            (not meta["namespace"].startswith(OPENSHIFT_PREFIXES), meta["namespace"], kind, meta["name"])
        )
    return [f"oc -n {ns} rollout restart {kind}/{name}" for _, ns, kind, name in sorted(lines)]


def workload_report(ctx: StepContext) -> Outcome:
    apps = client.AppsV1Api(ctx.kube())
    items: list[tuple[str, Mapping[str, Any]]] = []
    for kind, fn in (
        ("deployment", apps.list_deployment_for_all_namespaces),
        ("daemonset", apps.list_daemon_set_for_all_namespaces),
        ("statefulset", apps.list_stateful_set_for_all_namespaces),
    ):
        items += [(kind, plain(ctx, o)) for o in call(ctx.cluster, fn).items]
    commands = workloads_to_restart(items)
    third_party = [c for c in commands if not c.split()[2].startswith(OPENSHIFT_PREFIXES)]
    return Outcome(
        True,
        msg("restore.workloads", count=len(commands), third_party=len(third_party)),
        details="\n".join(commands),
        vars={"workloads": len(commands)},
    )
