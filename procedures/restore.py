"""Restore to a previous cluster state from an etcd backup: runbook 5.4.2.2 (CN copy, 4.12–4.16 text).

`/dr restore CLUSTER [backup=DIR] [recovery-host=HOST]`. Step numbers in `section` are the
procedure's steps in the CN copy:

 1 choose the recovery host            13 OVN: delete the non-recovery nodes
 2 SSH to every control-plane host     14 OVN: the network operator forgets their IPs
 3 the backup on the recovery host     15 OVN: remove nbdb/sbdb, restart the OVN pods (stuck Terminating)
 4 stop static pods on the others,     16 delete and re-create the lost control-plane machines
   move /var/lib/etcd, keepalived+VIPs 17 quorum guard off
 6 the recovery host holds the VIP     18–19 force an etcd redeployment
 7 export the cluster-wide proxy       20 quorum guard on
 8 cluster-restore.sh                  21 all nodes at the latest etcd revision
 9 nodes NotReady: delete kubelet PEMs 22 new kube-apiserver, -controller-manager, -scheduler revisions
10 restart kubelet (recovery host      23 every etcd pod Running
   first)                              24 restart the pods that hold API state (a list)
11 approve the CSRs
12 the single-member control plane

Nothing changes before `approve-start` (the preflight in restore_preflight.py); cluster-restore.sh
has its own approval, and so has deleting machines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from procedures import params
from procedures import restore_api as api
from procedures import restore_host as on_host
from procedures.csr import approve_csrs
from procedures.i18n import Msg, msg
from procedures.restore_preflight import CLUSTER_RESTORE, preflight_steps, start_prompt
from procedures.steps import (
    Approval,
    Call,
    Command,
    Procedure,
    Step,
    StepContext,
    WaitUntil,
    host_in,
    hosts_except,
)

SECTION = "5.4.2.2"
NON_RECOVERY = hosts_except("recovery_host")
RECOVERY = host_in("recovery_host")


def step(number: int | str) -> str:
    return f"{SECTION} step {number}"


def _ovn(ctx: StepContext) -> Msg | None:
    if ctx.cluster.network_type == "OVNKubernetes":
        return None
    return msg("restore.skip.not_ovn", network=ctx.cluster.network_type)


def _ipi(ctx: StepContext) -> Msg | None:
    return None if ctx.cluster.platform == "installer-provisioned" else msg("restore.skip.upi")


def _upi(ctx: StepContext) -> Msg | None:
    return None if ctx.cluster.platform == "user-provisioned" else msg("restore.skip.ipi")


def _keepalived(ctx: StepContext) -> Msg | None:
    return None if on_host.keepalived_hosts(ctx) else msg("restore.skip.no_keepalived")


def _recovery_vip(ctx: StepContext) -> Msg | None:
    if ctx.vars["recovery_host"] not in ctx.vars.get("keepalived_hosts", []):
        return msg("restore.skip.no_keepalived_recovery")
    if not ctx.vars["vips"]["api"]:
        return msg("restore.skip.no_vip")
    return None


def _stuck(ctx: StepContext) -> Msg | None:
    if _ovn(ctx) is not None:
        return _ovn(ctx)
    return None if ctx.vars.get("stuck_nodes") else msg("restore.skip.none_stuck")


def _script_prompt(ctx: StepContext) -> Msg:
    proxy = ", ".join(sorted(ctx.vars.get("proxy_env") or {})) or "-"
    return msg(
        "restore.script_prompt",
        host=ctx.vars["recovery_host"],
        script=CLUSTER_RESTORE,
        dir=ctx.vars["backup"]["dir"],
        snapshot=ctx.vars["backup"]["snapshot"],
        proxy=proxy,
    )


def _operator_steps(plural: str, key: str, number: str) -> tuple[Step, ...]:
    """Force a new revision of one static-pod operator and wait until every node runs it."""
    return (
        Call(
            id=f"force-{key}",
            title=msg("restore.step.force", operator=plural),
            section=step(number),
            call=api.retrying(api.force_redeployment(plural)),
        ),
        WaitUntil(
            id=f"wait-{key}",
            title=msg("restore.step.wait_rollout", operator=plural),
            section=step(number),
            condition=api.tolerant(api.at_latest_revision(plural)),
            interval=3,
            timeout=1800,
        ),
    )


def _csr_step(step_id: str, number: int, when: Any = None, when_text: Msg | None = None) -> Step:
    return dataclasses.replace(approve_csrs(step_id, step(number)), when=when, when_text=when_text)


STEPS: tuple[Step, ...] = (
    *preflight_steps(section=SECTION, script=CLUSTER_RESTORE),
    Approval(
        id="approve-start",
        title=msg("restore.step.start"),
        section=f"{SECTION} (prerequisites)",
        prompt=start_prompt,
    ),
    Command(
        id="stop-etcd",
        title=msg("restore.step.stop_etcd"),
        section=step(4),
        on=NON_RECOVERY,
        command=on_host.move_manifest_command("etcd-pod.yaml"),
        sudo=True,
        timeout=60,
        destructive=True,
        check=on_host.ok_with(msg("restore.manifest_moved", manifest="etcd-pod.yaml")),
    ),
    WaitUntil(
        id="wait-etcd-stopped",
        title=msg("restore.step.wait_etcd_stopped"),
        section=step(4),
        condition=on_host.containers_gone("etcd", ("operator", "etcd-guard")),
        interval=2,
        timeout=300,
    ),
    Command(
        id="stop-kube-apiserver",
        title=msg("restore.step.stop_kube_apiserver"),
        section=step(4),
        on=NON_RECOVERY,
        command=on_host.move_manifest_command("kube-apiserver-pod.yaml"),
        sudo=True,
        timeout=60,
        destructive=True,
        check=on_host.ok_with(msg("restore.manifest_moved", manifest="kube-apiserver-pod.yaml")),
    ),
    WaitUntil(
        id="wait-kube-apiserver-stopped",
        title=msg("restore.step.wait_kube_apiserver_stopped"),
        section=step(4),
        condition=on_host.containers_gone("kube-apiserver", ("operator", "guard")),
        interval=2,
        timeout=300,
    ),
    Command(
        id="move-etcd-data",
        title=msg("restore.step.move_etcd_data"),
        section=step(4),
        on=NON_RECOVERY,
        command=on_host.MOVE_ETCD_DATA,
        sudo=True,
        timeout=300,
        idempotent=False,
        destructive=True,
        check=on_host.ok_with(msg("restore.etcd_data_moved")),
    ),
    Command(
        id="stop-keepalived",
        title=msg("restore.step.stop_keepalived"),
        section=step(4),
        on=NON_RECOVERY,
        command=on_host.move_manifest_command("keepalived.yaml"),
        sudo=True,
        timeout=60,
        destructive=True,
        when=_keepalived,
        when_text=msg("restore.when.keepalived"),
        check=on_host.ok_with(msg("restore.manifest_moved", manifest="keepalived.yaml")),
    ),
    WaitUntil(
        id="wait-keepalived-stopped",
        title=msg("restore.step.wait_keepalived_stopped"),
        section=step(4),
        condition=on_host.keepalived_gone,
        interval=2,
        timeout=300,
        when=_keepalived,
        when_text=msg("restore.when.keepalived"),
    ),
    Call(
        id="remove-vips",
        title=msg("restore.step.remove_vips"),
        section=step(4),
        call=on_host.remove_vips,
        destructive=True,
        when=_keepalived,
        when_text=msg("restore.when.keepalived"),
    ),
    WaitUntil(
        id="check-recovery-vip",
        title=msg("restore.step.check_recovery_vip"),
        section=step(6),
        condition=on_host.recovery_holds_vip,
        interval=2,
        timeout=120,
        when=_recovery_vip,
        when_text=msg("restore.when.keepalived"),
    ),
    Approval(
        id="approve-restore-script",
        title=msg("restore.step.approve_script"),
        section=step(8),
        prompt=_script_prompt,
    ),
    Command(
        id="run-restore-script",
        title=msg("restore.step.run_script"),
        section=step("7–8"),
        on=RECOVERY,
        command=on_host.restore_command,
        sudo=True,
        timeout=1800,
        idempotent=False,
        destructive=True,
        check=on_host.restored,
    ),
    WaitUntil(
        id="wait-nodes",
        title=msg("restore.step.wait_nodes"),
        section=step(9),
        condition=api.nodes_reported,
        interval=3,
        timeout=900,
    ),
    Call(
        id="clear-kubelet-pki",
        title=msg("restore.step.clear_pki"),
        section=step(9),
        call=api.retrying(api.clear_kubelet_pki),
        destructive=True,
    ),
    Command(
        id="restart-kubelet-recovery",
        title=msg("restore.step.restart_kubelet_recovery"),
        section=step(10),
        on=RECOVERY,
        command="systemctl restart kubelet.service",
        sudo=True,
        timeout=120,
    ),
    Command(
        id="restart-kubelet-others",
        title=msg("restore.step.restart_kubelet_others"),
        section=step(10),
        on=NON_RECOVERY,
        command="systemctl restart kubelet.service",
        sudo=True,
        serial=True,
        timeout=120,
    ),
    _csr_step("approve-csrs", 11),
    WaitUntil(
        id="confirm-single-etcd",
        title=msg("restore.step.single_etcd"),
        section=step(12),
        condition=api.tolerant(api.single_member),
        interval=3,
        timeout=600,
    ),
    Call(
        id="ovn-delete-nodes",
        title=msg("restore.step.ovn_delete_nodes"),
        section=step(13),
        call=api.retrying(api.delete_non_recovery_nodes),
        destructive=True,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    WaitUntil(
        id="ovn-wait-ips",
        title=msg("restore.step.ovn_wait_ips"),
        section=step(14),
        condition=api.tolerant(api.ovn_forgot_ips),
        interval=5,
        timeout=1200,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    Command(
        id="ovn-remove-databases",
        title=msg("restore.step.ovn_remove_databases"),
        section=step(15),
        command=on_host.remove_ovn_databases_command(),
        sudo=True,
        timeout=60,
        destructive=True,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
        check=on_host.ok_with(msg("restore.ovn_databases_removed")),
    ),
    Call(
        id="ovn-restart-control-plane",
        title=msg("restore.step.ovn_restart_control_plane"),
        section=step(15),
        call=api.retrying(api.restart_ovn_control_plane),
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    WaitUntil(
        id="ovn-wait-control-plane",
        title=msg("restore.step.ovn_wait_control_plane"),
        section=step(15),
        condition=api.tolerant(api.ovn_control_plane_running),
        interval=3,
        timeout=900,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    Call(
        id="ovn-restart-node-pods",
        title=msg("restore.step.ovn_restart_node_pods"),
        section=step(15),
        call=api.retrying(api.restart_ovnkube_node_pods),
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    WaitUntil(
        id="ovn-wait-node-pods",
        title=msg("restore.step.ovn_wait_node_pods"),
        section=step(15),
        condition=api.tolerant(api.ovnkube_node_settled),
        interval=3,
        timeout=900,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    Call(
        id="ovn-stuck-terminating",
        title=msg("restore.step.ovn_stuck"),
        section=step(15),
        call=api.retrying(api.handle_stuck_terminating),
        destructive=True,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    _csr_step("ovn-approve-csrs", 15, when=_stuck, when_text=msg("restore.when.stuck")),
    WaitUntil(
        id="ovn-node-pods-running",
        title=msg("restore.step.ovn_node_pods_running"),
        section=step(15),
        condition=api.tolerant(lambda ctx: api.pods_running(ctx, "ovnkube-node")),
        interval=3,
        timeout=900,
        when=_ovn,
        when_text=msg("restore.when.ovn"),
    ),
    Call(
        id="plan-machines",
        title=msg("restore.step.plan_machines"),
        section=step(16),
        call=api.retrying(api.plan_machines),
        when=_ipi,
        when_text=msg("restore.when.ipi"),
    ),
    Approval(
        id="approve-machines",
        title=msg("restore.step.approve_machines"),
        section=step(16),
        prompt=api.machine_prompt,
        when=_ipi,
        when_text=msg("restore.when.ipi"),
    ),
    Call(
        id="recreate-machines",
        title=msg("restore.step.recreate_machines"),
        section=step(16),
        call=api.recreate_machines,
        destructive=True,
        when=_ipi,
        when_text=msg("restore.when.ipi"),
    ),
    Approval(
        id="confirm-upi-machines",
        title=msg("restore.step.upi_machines"),
        section=step(16),
        prompt=api.upi_prompt,
        destructive=False,
        when=_upi,
        when_text=msg("restore.when.upi"),
    ),
    WaitUntil(
        id="wait-control-plane-nodes",
        title=msg("restore.step.wait_masters"),
        section=step(16),
        condition=api.tolerant(api.control_plane_nodes_ready),
        interval=5,
        timeout=1800,
    ),
    Call(
        id="quorum-guard-off",
        title=msg("restore.step.guard_off"),
        section=step(17),
        call=api.retrying(api.quorum_guard(enabled=False)),
    ),
    Call(
        id="force-etcd",
        title=msg("restore.step.force", operator="etcds"),
        section=step("18–19"),
        call=api.retrying(api.force_redeployment("etcds")),
    ),
    WaitUntil(
        id="etcd-revision-cut",
        title=msg("restore.step.revision_cut"),
        section=step(19),
        condition=api.tolerant(api.revision_cut("etcds")),
        interval=2,
        timeout=300,
    ),
    Call(
        id="quorum-guard-on",
        title=msg("restore.step.guard_on"),
        section=step(20),
        call=api.retrying(api.quorum_guard(enabled=True)),
    ),
    WaitUntil(
        id="wait-etcd",
        title=msg("restore.step.wait_rollout", operator="etcds"),
        section=step(21),
        condition=api.tolerant(api.at_latest_revision("etcds")),
        interval=3,
        timeout=1800,
    ),
    *_operator_steps("kubeapiservers", "kube-apiserver", "22"),
    *_operator_steps("kubecontrollermanagers", "kube-controller-manager", "22"),
    *_operator_steps("kubeschedulers", "kube-scheduler", "22"),
    WaitUntil(
        id="etcd-pods-running",
        title=msg("restore.step.etcd_pods"),
        section=step(23),
        condition=api.tolerant(api.etcd_pods_running),
        interval=3,
        timeout=900,
    ),
    WaitUntil(
        id="etcd-members",
        title=msg("restore.step.etcd_members"),
        section=step(23),
        condition=lambda ctx: on_host.etcd_members_are(ctx, len(ctx.cluster.hosts)),
        interval=3,
        timeout=600,
    ),
    Call(
        id="workloads-to-restart",
        title=msg("restore.step.workloads"),
        section=step(24),
        call=api.retrying(api.workload_report),
    ),
)


def report(vars: Mapping[str, Any]) -> Msg:
    backup = vars.get("backup") or {}
    return msg(
        "restore.report",
        recovery=vars.get("recovery_host", "?"),
        snapshot=backup.get("snapshot", "?"),
        dir=backup.get("dir", "?"),
        machines="; ".join(vars.get("machines_replaced") or []) or "-",
        workloads=vars.get("workloads", 0),
    )


PROCEDURE = Procedure(
    name="restore",
    title=msg("restore.title"),
    section=SECTION,
    parameters={"backup": msg("restore.param.backup"), "recovery-host": msg("restore.param.recovery_host")},
    checks={"backup": params.backup_path, "recovery-host": params.control_plane_host},
    report=report,
    steps=STEPS,
)
