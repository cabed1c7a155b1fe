"""Manually restore a cluster from an etcd backup: runbook 5.4.2.3 (CN copy), a three-member etcd at once.

`/dr restore-manual CLUSTER [backup=DIR] [recovery-host=HOST]`. Unlike 5.4.2.2 (procedures/restore.py)
no control-plane host is re-created: every host restores the same snapshot with `etcdctl snapshot
restore` under the same ETCD_INITIAL_CLUSTER and token, then the members start together. Step numbers
in `section` are the procedure's steps (流程) in the CN copy:

 1 SSH to every control-plane host         6 regenerate the database from the snapshot, compare
 2 the backup on every host (copy it)        the "added member" lines
 3 stop the static pods, one host at a time 7 move the member directory into place, restorecon
 4 move the member data to old-member-data  8 etcd back, one host at a time
 5 each host's ETCD_NAME, peer URL,         9 the etcd cluster's status
   ETCD_INITIAL_CLUSTER and one UUID       10 the other static pods, kubelet, the OVN databases

Nothing is written on any host before `approve-start`: the shared preflight (restore_preflight.py),
then each host's etcd parameters, the uuid and the snapshot on every host are read and checked first,
every value a host gives against a strict pattern (restore_values.py). The snapshot is copied to the
hosts that lack it only after the approval. Host commands are in manual_restore_host.py, API calls in
manual_restore_api.py, parsing and the checks of host values in manual_restore_parse.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from procedures import manual_restore_api as api
from procedures import manual_restore_host as on_host
from procedures import params
from procedures.i18n import Msg, msg
from procedures.manual_restore_parse import OLD_MEMBER_DATA
from procedures.restore_preflight import CLUSTER_RESTORE, preflight_steps, versions_text, webhooks_text
from procedures.steps import ALL_HOSTS, Approval, Call, Command, Procedure, Step, StepContext, host_in

SECTION = "5.4.2.3"


def step(number: int | str) -> str:
    return f"{SECTION} step {number}"


def _copy_needed(ctx: StepContext) -> Msg | None:
    return None if ctx.vars.get("copy_to") else msg("manual_restore.copy_not_needed")


def _ovn(ctx: StepContext) -> Msg | None:
    if ctx.cluster.network_type == "OVNKubernetes":
        return None
    return msg("manual_restore.not_ovn", network=ctx.cluster.network_type)


def _start_prompt(ctx: StepContext) -> Msg:
    vars = ctx.vars
    return msg(
        "manual_restore.start_prompt",
        cluster=ctx.cluster.name,
        snapshot=on_host.snapshot_path(ctx),
        revision=vars["backup"].get("revision"),
        initial_cluster=vars["initial_cluster"],
        versions=versions_text(vars).to_json(),
        webhooks=webhooks_text(vars.get("webhooks_fail")).to_json(),
        hosts=", ".join(h.name for h in ctx.cluster.hosts),
        copy_to=", ".join(vars.get("copy_to") or []) or "-",
    )


STEPS: tuple[Step, ...] = (
    *preflight_steps(section=SECTION, script=CLUSTER_RESTORE),
    Command(
        id="read-etcd-parameters",
        title=msg("manual_restore.step.parameters"),
        section=step(5),
        on=ALL_HOSTS,
        command=on_host.parameters_command,
        sudo=True,
        timeout=60,
        check=on_host.parameters_read,
    ),
    Command(
        id="generate-uuid",
        title=msg("manual_restore.step.uuid"),
        section=step(5),
        on=host_in("recovery_host"),
        command="uuidgen",
        timeout=30,
        check=on_host.uuid_generated,
    ),
    Command(
        id="check-snapshot-on-hosts",
        title=msg("manual_restore.step.check_snapshot"),
        section=step(2),
        on=ALL_HOSTS,
        command=on_host.snapshot_check_command,
        sudo=True,
        timeout=600,
        check=on_host.snapshot_checked,
    ),
    Approval(
        id="approve-start",
        title=msg("manual_restore.step.start"),
        section=f"{SECTION} (prerequisites)",
        prompt=_start_prompt,
    ),
    Call(
        id="copy-snapshot",
        title=msg("manual_restore.step.copy_snapshot"),
        section=step(2),
        when=_copy_needed,
        when_text=msg("manual_restore.when.copy"),
        call=on_host.copy_snapshot,
    ),
    Command(
        id="stop-static-pods",
        title=msg("manual_restore.step.stop_pods"),
        section=step(3),
        on=ALL_HOSTS,
        serial=True,
        command=on_host.stop_static_pods_command,
        sudo=True,
        timeout=4 * on_host.STOP_WAIT + 120,
        destructive=True,
        check=on_host.on_every_host("manual_restore.pods_stopped"),
    ),
    Command(
        id="save-member-data",
        title=msg("manual_restore.step.save_member"),
        section=step(4),
        on=ALL_HOSTS,
        command=on_host.save_member_data_command,
        sudo=True,
        timeout=300,
        destructive=True,
        check=on_host.on_every_host("manual_restore.member_saved"),
    ),
    Call(
        id="restore-snapshot",
        title=msg("manual_restore.step.restore"),
        section=step(6),
        call=on_host.restore,
        destructive=True,
    ),
    Call(
        id="compare-member-lines",
        title=msg("manual_restore.step.compare"),
        section=step(6),
        call=on_host.compare,
    ),
    Command(
        id="move-restored-member",
        title=msg("manual_restore.step.move_member"),
        section=step(7),
        on=ALL_HOSTS,
        command=on_host.move_member_command,
        sudo=True,
        timeout=300,
        check=on_host.moved,
        destructive=True,
    ),
    Command(
        id="start-etcd",
        title=msg("manual_restore.step.start_etcd"),
        section=step(8),
        on=ALL_HOSTS,
        serial=True,
        command=on_host.start_etcd_command,
        sudo=True,
        timeout=on_host.START_WAIT + 60,
        check=on_host.on_every_host("manual_restore.etcd_started"),
    ),
    Call(
        id="check-etcd",
        title=msg("manual_restore.step.check_etcd"),
        section=step(9),
        call=on_host.etcd_healthy,
    ),
    Command(
        id="start-static-pods",
        title=msg("manual_restore.step.start_pods"),
        section=step(10),
        on=ALL_HOSTS,
        serial=True,
        command=on_host.start_static_pods_command,
        sudo=True,
        timeout=3 * on_host.START_WAIT + 60,
        check=on_host.on_every_host("manual_restore.pods_started"),
    ),
    Command(
        id="restart-kubelet",
        title=msg("manual_restore.step.kubelet"),
        section=step(10),
        on=ALL_HOSTS,
        command=on_host.restart_kubelet_command,
        sudo=True,
        timeout=on_host.START_WAIT + 60,
        check=on_host.on_every_host("manual_restore.kubelet_restarted"),
    ),
    Call(
        id="wipe-ovn-databases",
        title=msg("manual_restore.step.ovn"),
        section=step(10),
        when=_ovn,
        when_text=msg("manual_restore.when.ovn"),
        call=api.wipe_ovn,
        destructive=True,
    ),
    Call(
        id="verify-cluster",
        title=msg("manual_restore.step.verify"),
        section=f"{SECTION} (verification)",
        call=api.verify,
    ),
)


def report(vars: Mapping[str, Any]) -> Msg:
    return msg(
        "manual_restore.report",
        snapshot=vars["backup"]["snapshot"],
        initial_cluster=vars["initial_cluster"],
        old=OLD_MEMBER_DATA,
    )


PROCEDURE = Procedure(
    name="restore-manual",
    title=msg("manual_restore.title"),
    section=SECTION,
    parameters={
        "backup": msg("manual_restore.param.backup"),
        "recovery-host": msg("manual_restore.param.recovery_host"),
    },
    checks={"backup": params.backup_path, "recovery-host": params.control_plane_host},
    report=report,
    steps=STEPS,
)
