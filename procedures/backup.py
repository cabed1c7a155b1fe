"""Back up etcd: the prerequisite of every restore in 5.4.2.

The runbook (5.4.2.2, prerequisites) needs "a backup directory holding an etcd snapshot and the
static pod resources from the same backup: snapshot_<ts>.db and static_kuberesources_<ts>.tar.gz".
The docs' "Backing up etcd data" takes it with cluster-backup.sh on one healthy control-plane host,
exporting the cluster-wide proxy settings first. The backup stays in the cluster's backup_dir on
that host, where the restore procedures look for it; the run's result records where it is.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from kubernetes import client

from procedures import params
from procedures.etcdctl import snapshot_status
from procedures.i18n import Msg, msg
from procedures.steps import (
    ALL_HOSTS,
    Call,
    Command,
    CommandResult,
    Outcome,
    Procedure,
    StepContext,
    StepFailed,
    host_in,
)
from procedures.versions import cluster_version, proxy_env

SECTION = "5.4.2.2 (prerequisites: backing up etcd)"
BACKUP_SCRIPT = "/usr/local/bin/cluster-backup.sh"


def _probe_command(ctx: StepContext) -> str:
    return (
        f"test -x {BACKUP_SCRIPT} || {{ echo 'missing {BACKUP_SCRIPT}'; exit 3; }}; "
        "crictl ps --label io.kubernetes.container.name=etcd -q"
    )


def _healthy_hosts(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    healthy = [r.host for r in results if r.ok and r.stdout.strip()]
    problems = [f"{r.host}: {_why_unhealthy(r)}" for r in results if r.host not in healthy]
    if not healthy:
        return Outcome(False, msg("backup.no_healthy_host", problems="; ".join(problems)))
    summary = msg("backup.healthy_hosts", hosts=", ".join(healthy), problems="; ".join(problems) or "-")
    return Outcome(True, summary, vars={"healthy_hosts": healthy})


def _why_unhealthy(result: CommandResult) -> str:
    if result.exit_code is None:
        return result.error
    if result.exit_code == 3:
        return f"no {BACKUP_SCRIPT}"
    if result.ok:
        return "etcd is not running"
    return f"exit {result.exit_code}: {(result.stderr or result.stdout).strip()[-200:]}"


def _read_cluster(ctx: StepContext) -> Outcome:
    """The version the backup belongs to (a restore needs the same z-stream) and the proxy to export."""
    try:
        api = ctx.kube()
        version = cluster_version(ctx, client.CustomObjectsApi(api))
        env = proxy_env(ctx, client.CustomObjectsApi(api))
    except StepFailed as failure:
        return Outcome(
            True,
            msg("backup.version_unknown", reason=failure.summary.to_json()),
            vars={"cluster_version": "", "proxy_env": {}},
        )
    return Outcome(
        True,
        msg("backup.version", version=version, proxy="yes" if env else "no"),
        vars={"cluster_version": version, "proxy_env": env},
    )


def _pick_host(ctx: StepContext) -> Outcome:
    healthy: list[str] = list(ctx.vars["healthy_hosts"])
    wanted = ctx.params.get("host")
    if wanted and wanted not in healthy:
        raise StepFailed(msg("backup.host_not_healthy", host=wanted, healthy=", ".join(healthy)))
    host = wanted or healthy[0]
    return Outcome(True, msg("backup.host_picked", host=host), vars={"backup_host": host})


def _backup_dir(ctx: StepContext) -> str:
    return ctx.params.get("dir") or ctx.cluster.backup_dir


def _backup_command(ctx: StepContext) -> str:
    exports = "".join(
        f"export {k}={shlex.quote(v)}; " for k, v in dict(ctx.vars.get("proxy_env", {})).items()
    )
    directory = shlex.quote(_backup_dir(ctx))
    return f"{exports}{BACKUP_SCRIPT} {directory} && {record_info_command(ctx, directory)}"


def record_info_command(ctx: StepContext, directory: str) -> str:
    """Write backup-info_<ts>.json next to the newest snapshot: the version the backup belongs to (a
    restore needs the same z-stream), the host and the time, for the restore's preflight to read."""
    fields = json.dumps(
        {"cluster_version": ctx.vars.get("cluster_version") or "", "host": ctx.vars["backup_host"]}
    )
    head = shlex.quote(fields[:-1] + ', "time": "')
    return (
        f"cd {directory} && snap=$(ls -v snapshot_*.db | tail -1) && "
        "ts=${snap#snapshot_} && ts=${ts%.db} && "
        f"{{ printf '%s' {head}; date -u +%Y-%m-%dT%H:%M:%SZ | tr -d '\\n'; "
        'printf \'", "snapshot": "%s", "resources": "static_kuberesources_%s.tar.gz"}\\n\' "$snap" "$ts"; } '
        '> "backup-info_$ts.json"'
    )


def _backup_saved(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    (result,) = results
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
    if not result.ok:
        reason = result.error or f"exit {result.exit_code}"
        return Outcome(False, msg("backup.script_failed", host=result.host, reason=reason), details=tail)
    return Outcome(True, msg("backup.script_done", host=result.host, dir=_backup_dir(ctx)), details=tail)


def _verify_command(ctx: StepContext) -> str:
    directory = shlex.quote(_backup_dir(ctx))
    return (
        f"cd {directory} && snap=$(ls -v snapshot_*.db | tail -1) && "
        "res=$(ls -v static_kuberesources_*.tar.gz | tail -1) && "
        'stat -c "%n %s" "$snap" "$res" && ' + snapshot_status('"$snap"')
    )


def _verified(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    (result,) = results
    if not result.ok:
        return Outcome(
            False,
            msg(
                "backup.verify_failed", host=result.host, reason=result.error or result.stderr.strip()[-300:]
            ),
        )
    backup = parse_backup_listing(result.stdout)
    backup.update(host=result.host, dir=_backup_dir(ctx), cluster_version=ctx.vars.get("cluster_version", ""))
    return Outcome(True, backup_report(backup), vars={"backup": backup})


def parse_backup_listing(stdout: str) -> dict[str, Any]:
    """Parse `stat -c "%n %s"` of the snapshot and the resources tarball, then `snapshot status -w json`."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) < 3:
        raise StepFailed(msg("backup.listing_unreadable", output=stdout[-300:]))
    snapshot, snapshot_size = lines[0].rsplit(" ", 1)
    resources, resources_size = lines[1].rsplit(" ", 1)
    stamp = snapshot.removeprefix("snapshot_").removesuffix(".db")
    if resources.removeprefix("static_kuberesources_").removesuffix(".tar.gz") != stamp:
        raise StepFailed(msg("backup.mismatched_files", snapshot=snapshot, resources=resources))
    try:
        status = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise StepFailed(msg("backup.listing_unreadable", output=lines[-1][-300:])) from None
    return {
        "snapshot": snapshot,
        "snapshot_size": int(snapshot_size),
        "resources": resources,
        "resources_size": int(resources_size),
        "timestamp": stamp,
        "revision": status.get("revision"),
        "total_keys": status.get("totalKey"),
    }


def backup_report(backup: dict[str, Any]) -> Msg:
    return msg(
        "backup.report",
        host=backup["host"],
        dir=backup["dir"],
        snapshot=backup["snapshot"],
        snapshot_size=_size(backup["snapshot_size"]),
        resources=backup["resources"],
        resources_size=_size(backup["resources_size"]),
        version=backup.get("cluster_version") or "?",
        revision=backup.get("revision"),
        keys=backup.get("total_keys"),
    )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


PROCEDURE = Procedure(
    name="backup",
    title=msg("backup.title"),
    section=SECTION,
    parameters={"host": msg("backup.param.host"), "dir": msg("backup.param.dir")},
    checks={"host": params.control_plane_host, "dir": params.backup_path},
    report=lambda vars: backup_report(vars["backup"]),
    steps=(
        Command(
            id="probe-hosts",
            title=msg("backup.step.probe"),
            section=SECTION,
            on=ALL_HOSTS,
            command=_probe_command,
            sudo=True,
            timeout=30,
            check=_healthy_hosts,
        ),
        Call(id="read-cluster", title=msg("backup.step.read_cluster"), section=SECTION, call=_read_cluster),
        Call(id="pick-host", title=msg("backup.step.pick_host"), section=SECTION, call=_pick_host),
        Command(
            id="run-backup",
            title=msg("backup.step.run"),
            section=SECTION,
            on=host_in("backup_host"),
            command=_backup_command,
            sudo=True,
            timeout=900,
            check=_backup_saved,
        ),
        Command(
            id="verify-backup",
            title=msg("backup.step.verify"),
            section=SECTION,
            on=host_in("backup_host"),
            command=_verify_command,
            sudo=True,
            timeout=120,
            check=_verified,
        ),
    ),
)
