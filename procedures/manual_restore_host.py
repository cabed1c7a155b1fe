"""The manual restore's work on the control-plane hosts (5.4.2.3 steps 2–10): commands and what their
output means.

Every value from a host that goes into a command here was read and checked before the start approval
(read-etcd-parameters, generate-uuid, check-snapshot-on-hosts, with manual_restore_parse.py), and is
quoted with shlex.quote for each shell it passes: workers/ssh.py quotes the whole command for ssh →
sudo → sh, and restore_command quotes each value for the host's shell, podman's arguments and the
`bash -c` script in the etcd image.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from typing import Any

from procedures.etcdctl import ETCDCTL_IMAGE
from procedures.i18n import msg
from procedures.manual_restore_parse import (
    ETCD_ENV,
    ETCD_POD_FILES,
    MANIFESTS_BACKUP,
    OLD_MEMBER_DATA,
    RESTORE_POD_YAML,
    SECTION_MARK,
    SNAPSHOT_MISSING,
    AddedMember,
    Member,
    ParseError,
    added_members,
    endpoint_problems,
    endpoint_status_table,
    expected_members,
    initial_cluster,
    member_lines_differ,
    read_member,
    restore_uuid,
    sections,
    snapshot_sum,
)
from procedures.restore_host import MANIFESTS
from procedures.restore_preflight import untrusted_outcome
from procedures.restore_values import UntrustedValue
from procedures.steps import CommandResult, Outcome, StepContext, StepFailed, all_ok

ETCD_DATA = "/var/lib/etcd"
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
TOOLS = ("podman", "crictl", "jq", "restorecon", "uuidgen")
STOP_WAIT = 240
"""Checks (every 0.5 s) for the kubelet to stop a pod's containers before `crictl stop` ("a few minutes")."""
START_WAIT = 600
"""Checks (every 0.5 s) for the kubelet to start a pod's containers."""
HEALTH_TIMEOUT = 300.0
POLL = 3.0


def on_every_host(summary: str) -> Any:
    """A check that names the hosts and keeps what each printed (the crictl checks) in the details."""

    def check(ctx: StepContext, results: list[CommandResult]) -> Outcome:
        failed = [r for r in results if not r.ok]
        if failed:
            return all_ok(ctx, failed, msg("step.ok"))
        details = "\n".join(f"[{r.host}]\n{r.stdout.strip()}" for r in results)
        return Outcome(True, msg(summary, hosts=", ".join(r.host for r in results)), details=details)

    return check


# --- step 5: each host's etcd parameters, read from its own files (read-only) -----------------------------


def parameters_command(ctx: StepContext) -> str:
    mark = shlex.quote(SECTION_MARK)
    manifest, backup = ETCD_POD_FILES
    return "; ".join(
        (
            f"echo {mark}pod.yaml",
            f"cat {RESTORE_POD_YAML}",
            f"echo {mark}etcd.env",
            f"cat {ETCD_ENV}",
            f"echo {mark}image",
            f"{ETCDCTL_IMAGE} {manifest} 2>/dev/null || {ETCDCTL_IMAGE} {backup} 2>/dev/null",
            f"echo {mark}missing-tools",
            f"for t in {' '.join(TOOLS)}; do command -v $t >/dev/null 2>&1 || echo $t; done",
            f"echo {mark}old-member-data",
            f"ls -A {OLD_MEMBER_DATA} 2>/dev/null",
            f"echo {mark}etcd-data",
            f"ls -A {ETCD_DATA} 2>/dev/null",
            "true",
        )
    )


def parameters_read(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    problems: list[str] = []
    untrusted: list[tuple[str, UntrustedValue]] = []
    members: list[Member] = []
    images: dict[str, str] = {}
    data: dict[str, str] = {}
    for result in results:
        if not result.ok:
            problems.append(f"{result.host}: {result.error or f'exit {result.exit_code}'}")
            continue
        try:
            member, image = read_member(result.host, result.stdout)
        except UntrustedValue as error:
            untrusted.append((result.host, error))
            continue
        except ParseError as error:
            problems.append(f"{result.host}: {error}")
            continue
        members.append(member)
        images[result.host] = image
        data[result.host] = sections(result.stdout).get("etcd-data", "").replace("\n", " ") or "-"
    if untrusted:
        return untrusted_outcome(untrusted)
    if not problems:
        try:
            cluster = initial_cluster(members)
        except ParseError as error:
            problems.append(str(error))
    if problems:
        return Outcome(False, msg("manual_restore.parameters_bad", problems="; ".join(problems)))
    details = "\n".join(
        f"{m.host}: ETCD_NAME={m.name} ETCD_NODE_PEER_URL={m.peer_url} image={images[m.host]} "
        f"{ETCD_DATA}: {data[m.host]}"
        for m in members
    )
    return Outcome(
        True,
        msg("manual_restore.parameters_ok", initial_cluster=cluster),
        details=details,
        vars={
            "members": {
                m.host: {"name": m.name, "ip": m.ip, "peer_url": m.peer_url, "image": images[m.host]}
                for m in members
            },
            "initial_cluster": cluster,
        },
    )


def uuid_generated(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    (result,) = results
    if not result.ok:
        output = result.stdout.strip() or result.error
        return Outcome(False, msg("manual_restore.uuid_failed", host=result.host, output=output))
    try:
        value = restore_uuid(result.stdout)
    except UntrustedValue as error:
        return untrusted_outcome([(result.host, error)])
    return Outcome(True, msg("manual_restore.uuid", uuid=value), vars={"uuid": value})


# --- step 2: the same snapshot on every host (read-only check, then a copy where it is missing) -----------


def snapshot_path(ctx: StepContext) -> str:
    backup: Mapping[str, Any] = ctx.vars["backup"]
    return f"{backup['dir']}/{backup['snapshot']}"


def snapshot_check_command(ctx: StepContext) -> str:
    path = shlex.quote(snapshot_path(ctx))
    return f"if [ -f {path} ]; then sha256sum {path}; else echo {SNAPSHOT_MISSING}; fi"


def snapshot_checked(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    failed = [r for r in results if not r.ok]
    if failed:
        return all_ok(ctx, failed, msg("step.ok"))
    path = snapshot_path(ctx)
    sums: dict[str, str] = {}
    for result in results:
        try:
            sums[result.host] = snapshot_sum(result.stdout, path)
        except UntrustedValue as error:
            return untrusted_outcome([(result.host, error)])
    recovery = ctx.vars["recovery_host"]
    expected = sums[recovery]
    if expected == SNAPSHOT_MISSING:
        return Outcome(False, msg("manual_restore.snapshot_gone", host=recovery, path=path))
    different = [h for h, s in sums.items() if s not in (expected, SNAPSHOT_MISSING)]
    if different:
        return Outcome(
            False,
            msg("manual_restore.snapshot_differs", hosts=", ".join(different), path=path, host=recovery),
        )
    missing = [h for h, s in sums.items() if s == SNAPSHOT_MISSING]
    return Outcome(
        True,
        msg("manual_restore.snapshot_present", path=path, copy_to=", ".join(missing) or "-"),
        details="\n".join(f"{h}: {s}" for h, s in sums.items()),
        vars={"snapshot_sha256": expected, "copy_to": missing},
    )


def copy_snapshot(ctx: StepContext) -> Outcome:
    targets = [ctx.cluster.host(name) for name in ctx.vars["copy_to"]]
    source = ctx.cluster.host(ctx.vars["recovery_host"])
    started = time.monotonic()
    failed = [r for r in ctx.copy(source, snapshot_path(ctx), targets) if not r.ok]
    if failed:
        raise StepFailed(
            msg("manual_restore.copy_write_failed", hosts="; ".join(f"{r.host}: {r.error}" for r in failed))
        )
    return Outcome(
        True,
        msg(
            "manual_restore.copied",
            path=snapshot_path(ctx),
            source=source.name,
            hosts=", ".join(h.name for h in targets),
            seconds=round(time.monotonic() - started, 1),
        ),
    )


# --- step 3: stop the static pods, one host at a time -----------------------------------------------------


def _running(pod: str) -> str:
    """The runbook's check for a pod's containers, as the ids of what is still running."""
    return f"crictl ps | grep {pod} | grep -E -v 'operator|guard' | awk '{{print $1}}'"


def stop_static_pods_command(ctx: StepContext) -> str:
    lines = [f"mkdir -p {MANIFESTS_BACKUP}"]
    for pod in (*CONTROL_PLANE_PODS, "etcd"):
        manifest = f"{pod}-pod.yaml"
        lines += [
            f"if [ -f {MANIFESTS}/{manifest} ]; then mv {MANIFESTS}/{manifest} {MANIFESTS_BACKUP}/ "
            f"&& echo 'moved {manifest} to {MANIFESTS_BACKUP}'; "
            f"elif [ -f {MANIFESTS_BACKUP}/{manifest} ]; then echo '{manifest} was already moved'; "
            f"else echo 'no {manifest} in {MANIFESTS} or {MANIFESTS_BACKUP}' >&2; exit 2; fi",
            f'i=0; while [ -n "$({_running(pod)})" ] && [ $i -lt {STOP_WAIT} ]; '
            "do sleep 0.5; i=$((i+1)); done",
            f'left=$({_running(pod)}); if [ -n "$left" ]; then echo "crictl stop {pod}: $left"; '
            "crictl stop $left >/dev/null; fi",
            f"if [ -n \"$({_running(pod)})\" ]; then echo '{pod} containers still run' >&2; exit 3; fi",
            f"echo '{pod} stopped'",
        ]
    return "\n".join(lines)


# --- step 4: keep the current member data -----------------------------------------------------------------


def save_member_data_command(ctx: StepContext) -> str:
    return (
        f"mkdir -p {OLD_MEMBER_DATA}; "
        f"if [ -d {ETCD_DATA}/member ]; then mv {ETCD_DATA}/member {OLD_MEMBER_DATA} "
        f"&& echo 'moved {ETCD_DATA}/member to {OLD_MEMBER_DATA}'; "
        f"elif [ -d {OLD_MEMBER_DATA}/member ]; then echo 'already in {OLD_MEMBER_DATA}'; "
        f"else echo 'no {ETCD_DATA}/member on this host: nothing to keep'; fi"
    )


# --- step 6: regenerate the database on every host --------------------------------------------------------


def restored_dir(uuid: str) -> str:
    return f"{ETCD_DATA}/restore-{uuid}"


def restore_command(member: Mapping[str, str], initial: str, uuid: str, snapshot: str, source: str) -> str:
    """The runbook's commands for one host; etcdctl runs in the etcd image as the runbook does it.

    `-it` is left out: drbot has no terminal, so the shell in the container gets its commands with `-c`.
    The image is the one read-etcd-parameters read from this host's etcd-pod.yaml and checked before the
    start approval; it is not read again here, so a manifest changed since cannot choose what runs.
    """
    quote = shlex.quote
    data_dir = restored_dir(uuid)
    inside = " ".join(
        (
            "etcdctl version && ETCDCTL_API=3 /usr/bin/etcdctl snapshot restore",
            quote(f"{ETCD_DATA}/{snapshot}"),
            f"--name {quote(member['name'])}",
            f"--initial-cluster={quote(initial)}",
            f"--initial-cluster-token {quote(f'openshift-etcd-{uuid}')}",
            f"--initial-advertise-peer-urls {quote(member['peer_url'])}",
            f"--data-dir={quote(data_dir)}",
            "--skip-hash-check=true",
        )
    )
    return "\n".join(
        (
            "set -e",
            f"rm -rf {quote(data_dir)}",
            f"cp {quote(source)} {ETCD_DATA}/",
            f"podman run --rm --entrypoint=/bin/bash -v {ETCD_DATA}:{ETCD_DATA}:z {quote(member['image'])} "
            f"-c {quote(inside)} 2>&1",
        )
    )


def restore(ctx: StepContext) -> Outcome:
    members: Mapping[str, Mapping[str, str]] = ctx.vars["members"]
    backup = ctx.vars["backup"]
    lines: dict[str, list[dict[str, Any]]] = {}
    outputs: list[str] = []
    failed: list[str] = []
    for host in ctx.cluster.hosts:
        ctx.progress(msg("manual_restore.restoring_on", host=host.name))
        command = restore_command(
            members[host.name],
            ctx.vars["initial_cluster"],
            ctx.vars["uuid"],
            backup["snapshot"],
            snapshot_path(ctx),
        )
        (result,) = ctx.run([host], command, sudo=True, timeout=900)
        outputs.append(
            f"[{host.name}] exit={result.exit_code} {result.error}\n{result.stdout}{result.stderr}".rstrip()
        )
        try:
            found = added_members(result.stdout + result.stderr)
        except (ParseError, UntrustedValue) as error:
            failed.append(f"{host.name}: {error}")
            continue
        if not result.ok or not found:
            failed.append(
                f"{host.name}: {result.error or f'exit {result.exit_code}'}, {len(found)} added member lines"
            )
            continue
        lines[host.name] = [
            {"cluster_id": m.cluster_id, "peer_id": m.peer_id, "peer_urls": list(m.peer_urls)} for m in found
        ]
    details = "\n\n".join(outputs)
    if failed:
        return Outcome(False, msg("manual_restore.restore_failed", hosts="; ".join(failed)), details=details)
    return Outcome(
        True, msg("manual_restore.restored", count=len(lines)), details=details, vars={"added_members": lines}
    )


def stored_members(vars: Mapping[str, Any]) -> dict[str, list[AddedMember]]:
    return {
        host: [AddedMember(m["cluster_id"], m["peer_id"], tuple(m["peer_urls"])) for m in found]
        for host, found in vars["added_members"].items()
    }


def compare(ctx: StepContext) -> Outcome:
    """The runbook's "check that the added member lines are the same on every host": if not, stop."""
    by_host = stored_members(ctx.vars)
    members = [Member(host, m["name"], m["ip"]) for host, m in ctx.vars["members"].items()]
    problems = expected_members(by_host, members)
    differ = member_lines_differ(by_host) or bool(problems)
    details = "\n".join(
        f"{host}:\n" + "\n".join(f"  {line}" for line in found) for host, found in by_host.items()
    )
    if differ:
        # The runbook stops here: etcd started from differing restores can form several clusters.
        lines = "\n".join(
            f"{host}: " + "; ".join(str(line) for line in found) for host, found in by_host.items()
        )
        problem = msg(
            "manual_restore.members_differ",
            lines=lines,
            problems="; ".join(problems) or "-",
            old=OLD_MEMBER_DATA,
        )
        return Outcome(False, problem, details=details)
    first = next(iter(by_host.values()))
    summary = msg("manual_restore.members_same", cluster_id=first[0].cluster_id, count=len(first))
    return Outcome(True, summary, details=details)


# --- step 7: the regenerated member directory in place ----------------------------------------------------


def move_member_command(ctx: StepContext) -> str:
    quote = shlex.quote
    restored = restored_dir(ctx.vars["uuid"])
    member = quote(f"{restored}/member")
    copied = quote(f"{ETCD_DATA}/{ctx.vars['backup']['snapshot']}")
    return "\n".join(
        (
            "set -e",
            f"if [ -d {member} ]; then mv {member} {ETCD_DATA}; "
            f"elif [ ! -d {ETCD_DATA}/member ]; then echo {quote(f'no {restored}/member')} >&2; exit 2; fi",
            f"restorecon -vR {ETCD_DATA}/",
            f"rm -rf {quote(restored)}",
            f"rm -f {copied}",
            f"echo {quote(SECTION_MARK)}contents",
            f"ls -A {ETCD_DATA}",
        )
    )


def moved(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    failed = [r for r in results if not r.ok]
    if failed:
        return all_ok(ctx, failed, msg("step.ok"))
    contents = {r.host: sections(r.stdout).get("contents", "").split() for r in results}
    wrong = [f"{h}: {' '.join(names) or '-'}" for h, names in contents.items() if names != ["member"]]
    if wrong:
        return Outcome(False, msg("manual_restore.data_dir_not_clean", dir=ETCD_DATA, hosts="; ".join(wrong)))
    return Outcome(True, msg("manual_restore.member_in_place", dir=ETCD_DATA))


# --- step 8: etcd back, one host at a time ----------------------------------------------------------------


def _wait_running(names: str, count: int, what: str) -> str:
    """Poll `crictl ps` (the runbook's "if the output is empty, wait a few minutes and check again")."""
    return (
        f"i=0; until [ $(crictl ps | grep -E '{names}' | grep -E -v 'operator|guard' | wc -l) -ge {count} ]; "
        f"do i=$((i+1)); if [ $i -gt {START_WAIT} ]; then echo '{what} did not start' >&2; "
        "crictl ps -a >&2; exit 4; fi; sleep 0.5; done"
    )


def start_etcd_command(ctx: StepContext) -> str:
    return "\n".join(
        (
            f"if [ -f {MANIFESTS_BACKUP}/etcd-pod.yaml ]; then "
            f"mv {MANIFESTS_BACKUP}/etcd-pod.yaml {MANIFESTS}; "
            f"elif [ ! -f {MANIFESTS}/etcd-pod.yaml ]; then echo 'no etcd-pod.yaml' >&2; exit 2; fi",
            _wait_running(" etcd +[0-9]| etcdctl +[0-9]", 2, "etcd"),
            "crictl ps | grep etcd | grep -v operator",
        )
    )


# --- step 9: the etcd cluster's status --------------------------------------------------------------------


ENDPOINT_STATUS = (
    "crictl exec $(crictl ps --label io.kubernetes.container.name=etcdctl -q | head -1) "
    "etcdctl endpoint status -w table"
)


def etcd_healthy(ctx: StepContext) -> Outcome:
    host = [ctx.cluster.host(ctx.vars["recovery_host"])]
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = ""
    while True:
        (result,) = ctx.run(host, ENDPOINT_STATUS, sudo=True, timeout=60)
        last = (result.stdout + result.stderr).strip() or result.error
        problems = [result.error or f"exit {result.exit_code}"] if not result.ok else []
        if result.ok:
            try:
                problems = endpoint_problems(endpoint_status_table(result.stdout), len(ctx.cluster.hosts))
            except ParseError as error:
                problems = [str(error)]
        if not problems:
            return Outcome(
                True, msg("manual_restore.etcd_healthy", count=len(ctx.cluster.hosts)), details=result.stdout
            )
        if time.monotonic() > deadline or ctx.aborted():
            return Outcome(
                False, msg("manual_restore.etcd_unhealthy", problems="; ".join(problems)), details=last
            )
        ctx.progress(msg("manual_restore.etcd_waiting", problems="; ".join(problems)))
        time.sleep(POLL)


def revision(ctx: StepContext) -> str:
    """The etcd revision the recovery host's member reports (shown next to the snapshot's)."""
    (result,) = ctx.run(
        [ctx.cluster.host(ctx.vars["recovery_host"])],
        ENDPOINT_STATUS.replace("-w table", "-w json"),
        sudo=True,
        timeout=60,
    )
    found = result.stdout.split('"revision":')
    return found[1].split(",")[0].strip() if len(found) > 1 else "?"


# --- step 10: the other static pods, kubelet, OVN ---------------------------------------------------------


def start_static_pods_command(ctx: StepContext) -> str:
    lines = []
    for pod in CONTROL_PLANE_PODS:
        manifest = f"{pod}-pod.yaml"
        lines += [
            f"if [ -f {MANIFESTS_BACKUP}/{manifest} ]; then mv {MANIFESTS_BACKUP}/{manifest} {MANIFESTS}; fi",
            _wait_running(pod, 1, pod),
            f"echo '{pod} started'",
        ]
    return "\n".join(lines)


def restart_kubelet_command(ctx: StepContext) -> str:
    return "\n".join(
        (
            "systemctl restart kubelet",
            f"mv {MANIFESTS_BACKUP}/kube-* {MANIFESTS}/ 2>/dev/null || true",
            _wait_running("kube-(apiserver|scheduler|controller-manager) ", 3, "the control-plane pods"),
            "crictl ps | grep -E 'kube-(apiserver|scheduler|controller-manager)' "
            "| grep -v -E 'operator|guard'",
        )
    )


OVN_WIPE = "rm -f /var/lib/ovn-ic/etc/ovn*.db && systemctl restart ovs-vswitchd ovsdb-server"
