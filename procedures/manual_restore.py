"""Manually restore a cluster from an etcd backup (5.4.2.3): a three-member etcd cluster at once.

Unlike 5.4.2.2 (procedures/restore.py) no control-plane host is re-created: every host restores the
same snapshot with `etcdctl snapshot restore` under the same ETCD_INITIAL_CLUSTER and token, then the
members start together. Step sections cite the numbered steps of the runbook's procedure (流程):
1 SSH to every host, 2 the backup on every host, 3 stop the static pods one host at a time, 4 move
the member data to old-member-data, 5 the etcd parameters of each host, 6 regenerate the database,
7 move it into place, 8 restart etcd one host at a time, 9 check etcd, 10 restart the other static
pods, kubelet, and wipe the OVN databases.

Everything that can be checked without changing a host is checked first (the shared restore
preflight, then each host's etcd parameters and the snapshot on every host); the first step that
changes anything comes after the start approval.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from procedures.i18n import Msg, msg
from procedures.kube import call
from procedures.manual_restore_parse import (
    SECTION_MARK,
    AddedMember,
    Member,
    ParseError,
    added_members,
    endpoint_problems,
    endpoint_status_table,
    etcd_name_from_restore_pod,
    expected_members,
    initial_cluster,
    member_lines_differ,
    peer_ip_from_etcd_env,
    sections,
)
from procedures.restore_preflight import CLUSTER_RESTORE, preflight_steps
from procedures.steps import (
    ALL_HOSTS,
    Approval,
    Call,
    Command,
    CommandResult,
    Outcome,
    Procedure,
    StepContext,
    StepFailed,
    all_ok,
    host_in,
)

SECTION = "5.4.2.3"
ASSETS = "/home/core/assets"
OLD_MEMBER_DATA = f"{ASSETS}/old-member-data"
MANIFESTS = "/etc/kubernetes/manifests"
MANIFESTS_BACKUP = "/root/manifests-backup"
ETCD_DATA = "/var/lib/etcd"
ETCD_CERTS = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps"
RESTORE_POD_YAML = f"{ETCD_CERTS}/restore-etcd-pod/pod.yaml"
ETCD_ENV = f"{ETCD_CERTS}/etcd-scripts/etcd.env"
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
TOOLS = ("podman", "crictl", "jq", "restorecon", "uuidgen")
ETCDCTL_IMAGE = """jq -r '.spec.containers[]|select(.name=="etcdctl")|.image'"""
STOP_WAIT = 240
"""Checks (every 0.5 s) for the kubelet to stop a pod's containers before `crictl stop` ("a few minutes")."""
START_WAIT = 600
"""Checks (every 0.5 s) for the kubelet to start a pod's containers."""
HEALTH_TIMEOUT = 300.0
POLL = 3.0
OVN_NAMESPACE = "openshift-ovn-kubernetes"


def _step(number: int | str) -> str:
    return f"{SECTION} step {number}"


def _on_every_host(summary: str) -> Any:
    """A check that names the hosts and keeps what each printed (the crictl checks) in the details."""

    def check(ctx: StepContext, results: list[CommandResult]) -> Outcome:
        failed = [r for r in results if not r.ok]
        if failed:
            return all_ok(ctx, failed, msg("step.ok"))
        details = "\n".join(f"[{r.host}]\n{r.stdout.strip()}" for r in results)
        return Outcome(True, msg(summary, hosts=", ".join(r.host for r in results)), details=details)

    return check


# --- step 5: each host's etcd parameters, read from its own files (read-only) -----------------------------


def _parameters_command(ctx: StepContext) -> str:
    mark = shlex.quote(SECTION_MARK)
    return "; ".join(
        (
            f"echo {mark}pod.yaml",
            f"cat {RESTORE_POD_YAML}",
            f"echo {mark}etcd.env",
            f"cat {ETCD_ENV}",
            f"echo {mark}image",
            f"{ETCDCTL_IMAGE} {MANIFESTS}/etcd-pod.yaml 2>/dev/null || "
            f"{ETCDCTL_IMAGE} {MANIFESTS_BACKUP}/etcd-pod.yaml 2>/dev/null",
            f"echo {mark}missing-tools",
            f"for t in {' '.join(TOOLS)}; do command -v $t >/dev/null 2>&1 || echo $t; done",
            f"echo {mark}old-member-data",
            f"ls -A {OLD_MEMBER_DATA} 2>/dev/null",
            f"echo {mark}etcd-data",
            f"ls -A {ETCD_DATA} 2>/dev/null",
            "true",
        )
    )


def read_member(host: str, output: str) -> tuple[Member, str]:
    """The member and the etcdctl image one host's files describe; ParseError says what is missing."""
    found = sections(output)
    if not found.get("pod.yaml"):
        raise ParseError(f"{RESTORE_POD_YAML} is missing or empty")
    if not found.get("etcd.env"):
        raise ParseError(f"{ETCD_ENV} is missing or empty")
    name = etcd_name_from_restore_pod(found["pod.yaml"])
    ip = peer_ip_from_etcd_env(found["etcd.env"], name)
    image = found.get("image", "").strip()
    if not image or image == "null":
        raise ParseError(f"no etcdctl container image in {MANIFESTS}/etcd-pod.yaml or {MANIFESTS_BACKUP}")
    missing = found.get("missing-tools", "").split()
    if missing:
        raise ParseError(f"missing tools: {', '.join(missing)}")
    if found.get("old-member-data", "").strip():
        raise ParseError(
            f"{OLD_MEMBER_DATA} is not empty (an earlier restore left data there, maybe the only copy): "
            "move it elsewhere, then start again"
        )
    return Member(host=host, name=name, ip=ip), image


def _parameters_read(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    problems: list[str] = []
    members: list[Member] = []
    images: dict[str, str] = {}
    data: dict[str, str] = {}
    for result in results:
        if not result.ok:
            problems.append(f"{result.host}: {result.error or f'exit {result.exit_code}'}")
            continue
        try:
            member, image = read_member(result.host, result.stdout)
        except ParseError as error:
            problems.append(f"{result.host}: {error}")
            continue
        members.append(member)
        images[result.host] = image
        data[result.host] = sections(result.stdout).get("etcd-data", "").replace("\n", " ") or "-"
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
            "members": {m.host: {"name": m.name, "ip": m.ip, "peer_url": m.peer_url} for m in members},
            "initial_cluster": cluster,
        },
    )


def _uuid_generated(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    (result,) = results
    value = result.stdout.strip()
    if not result.ok or len(value) != 36:
        return Outcome(
            False, msg("manual_restore.uuid_failed", host=result.host, output=value or result.error)
        )
    return Outcome(True, msg("manual_restore.uuid", uuid=value), vars={"uuid": value})


# --- step 2: the same snapshot on every host (read-only check, then a copy where it is missing) -----------


def _snapshot_path(ctx: StepContext) -> str:
    backup: Mapping[str, Any] = ctx.vars["backup"]
    return f"{backup['dir']}/{backup['snapshot']}"


def _snapshot_check_command(ctx: StepContext) -> str:
    path = shlex.quote(_snapshot_path(ctx))
    return f"if [ -f {path} ]; then sha256sum {path}; else echo missing; fi"


def _snapshot_checked(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    failed = [r for r in results if not r.ok]
    if failed:
        return all_ok(ctx, failed, msg("step.ok"))
    sums = {r.host: r.stdout.split()[0] for r in results}
    recovery = ctx.vars["recovery_host"]
    expected = sums[recovery]
    path = _snapshot_path(ctx)
    if expected == "missing":
        return Outcome(False, msg("manual_restore.snapshot_gone", host=recovery, path=path))
    different = [h for h, s in sums.items() if s not in (expected, "missing")]
    if different:
        return Outcome(
            False,
            msg("manual_restore.snapshot_differs", hosts=", ".join(different), path=path, host=recovery),
        )
    missing = [h for h, s in sums.items() if s == "missing"]
    return Outcome(
        True,
        msg("manual_restore.snapshot_present", path=path, copy_to=", ".join(missing) or "-"),
        details="\n".join(f"{h}: {s}" for h, s in sums.items()),
        vars={"snapshot_sha256": expected, "copy_to": missing},
    )


def _copy_needed(ctx: StepContext) -> Msg | None:
    return None if ctx.vars.get("copy_to") else msg("manual_restore.copy_not_needed")


def _copy_snapshot(ctx: StepContext) -> Outcome:
    targets = [ctx.cluster.host(name) for name in ctx.vars["copy_to"]]
    source = ctx.cluster.host(ctx.vars["recovery_host"])
    started = time.monotonic()
    failed = [r for r in ctx.copy(source, _snapshot_path(ctx), targets) if not r.ok]
    if failed:
        raise StepFailed(
            msg("manual_restore.copy_write_failed", hosts="; ".join(f"{r.host}: {r.error}" for r in failed))
        )
    return Outcome(
        True,
        msg(
            "manual_restore.copied",
            path=_snapshot_path(ctx),
            source=source.name,
            hosts=", ".join(h.name for h in targets),
            seconds=round(time.monotonic() - started, 1),
        ),
    )


# --- the start approval -----------------------------------------------------------------------------------


def _start_prompt(ctx: StepContext) -> Msg:
    vars = ctx.vars
    version, backup_version = vars.get("cluster_version") or "", vars.get("backup_version") or ""
    if version and backup_version:
        versions = msg("preflight.version_same", version=version)
    else:
        versions = msg("preflight.version_unknown", backup=backup_version or "?", cluster=version or "?")
    webhooks = vars.get("webhooks_fail")
    if webhooks is None:
        hooks = msg("preflight.webhooks_unknown")
    elif not webhooks:
        hooks = msg("preflight.webhooks_none")
    else:
        hooks = msg("preflight.webhooks_fail", webhooks=", ".join(webhooks))
    return msg(
        "manual_restore.start_prompt",
        cluster=ctx.cluster.name,
        snapshot=_snapshot_path(ctx),
        revision=vars["backup"].get("revision"),
        initial_cluster=vars["initial_cluster"],
        versions=versions.to_json(),
        webhooks=hooks.to_json(),
        hosts=", ".join(h.name for h in ctx.cluster.hosts),
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


def restore_command(member: Mapping[str, str], initial: str, uuid: str, snapshot: str, source: str) -> str:
    """The runbook's commands for one host; etcdctl runs in the etcd image as the runbook does it.

    `-it` is left out: drbot has no terminal, so the shell in the container gets its commands with `-c`.
    """
    inside = (
        "etcdctl version && "
        f"ETCDCTL_API=3 /usr/bin/etcdctl snapshot restore {ETCD_DATA}/{snapshot} "
        f'--name "{member["name"]}" '
        f'--initial-cluster="{initial}" '
        f'--initial-cluster-token "openshift-etcd-{uuid}" '
        f'--initial-advertise-peer-urls "{member["peer_url"]}" '
        f'--data-dir="{ETCD_DATA}/restore-{uuid}" '
        "--skip-hash-check=true"
    )
    return "\n".join(
        (
            "set -e",
            f"rm -rf {ETCD_DATA}/restore-{uuid}",
            f"cp {shlex.quote(source)} {ETCD_DATA}/",
            f"image=$({ETCDCTL_IMAGE} {MANIFESTS_BACKUP}/etcd-pod.yaml)",
            f"podman run --rm --entrypoint=/bin/bash -v {ETCD_DATA}:{ETCD_DATA}:z "
            f'"$image" -c {shlex.quote(inside)} 2>&1',
        )
    )


def _restore(ctx: StepContext) -> Outcome:
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
            _snapshot_path(ctx),
        )
        (result,) = ctx.run([host], command, sudo=True, timeout=900)
        outputs.append(
            f"[{host.name}] exit={result.exit_code} {result.error}\n{result.stdout}{result.stderr}".rstrip()
        )
        try:
            found = added_members(result.stdout + result.stderr)
        except ParseError as error:
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


def _compare(ctx: StepContext) -> Outcome:
    by_host = stored_members(ctx.vars)
    members = [Member(host, m["name"], m["ip"]) for host, m in ctx.vars["members"].items()]
    problems = expected_members(by_host, members)
    differ = member_lines_differ(by_host) or bool(problems)
    details = "\n".join(
        f"{host}:\n" + "\n".join(f"  {line}" for line in found) for host, found in by_host.items()
    )
    if differ:
        summary = msg("manual_restore.members_differ", problems="; ".join(problems) or "-")
    else:
        first = next(iter(by_host.values()))
        summary = msg("manual_restore.members_same", cluster_id=first[0].cluster_id, count=len(first))
    return Outcome(True, summary, details=details, vars={"members_differ": differ})


def _only_when_different(ctx: StepContext) -> Msg | None:
    return None if ctx.vars.get("members_differ") else msg("manual_restore.members_agree")


def _mismatch_prompt(ctx: StepContext) -> Msg:
    shown = "\n".join(
        f"{host}: " + "; ".join(str(line) for line in found)
        for host, found in stored_members(ctx.vars).items()
    )
    return msg("manual_restore.mismatch_prompt", lines=shown, old=OLD_MEMBER_DATA)


# --- step 7: the regenerated member directory in place ----------------------------------------------------


def move_member_command(ctx: StepContext) -> str:
    uuid, snapshot = ctx.vars["uuid"], ctx.vars["backup"]["snapshot"]
    restored = f"{ETCD_DATA}/restore-{uuid}"
    return "\n".join(
        (
            "set -e",
            f"if [ -d {restored}/member ]; then mv {restored}/member {ETCD_DATA}; "
            f"elif [ ! -d {ETCD_DATA}/member ]; then echo 'no {restored}/member' >&2; exit 2; fi",
            f"restorecon -vR {ETCD_DATA}/",
            f"rm -rf {restored}",
            f"rm -f {ETCD_DATA}/{shlex.quote(snapshot)}",
            f"echo {shlex.quote(SECTION_MARK)}contents",
            f"ls -A {ETCD_DATA}",
        )
    )


def _moved(ctx: StepContext, results: list[CommandResult]) -> Outcome:
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


def _etcd_healthy(ctx: StepContext) -> Outcome:
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


def _ovn_applies(ctx: StepContext) -> Msg | None:
    if ctx.cluster.network_type == "OVNKubernetes":
        return None
    return msg("manual_restore.not_ovn", network=ctx.cluster.network_type)


OVN_WIPE = "rm -f /var/lib/ovn-ic/etc/ovn*.db && systemctl restart ovs-vswitchd ovsdb-server"


def _wipe_ovn(ctx: StepContext) -> Outcome:
    """For each node: wipe its OVN databases, delete its ovnkube-node pod, wait until the new one is ready.

    The runbook reaches each node with `oc debug node/<n> -- chroot /host`; for the control-plane hosts
    drbot runs the same command over SSH. Other nodes are listed for the operator to do the same.
    """
    if not ctx.cluster.kubeconfig:
        raise StepFailed(msg("manual_restore.ovn_no_api", cluster=ctx.cluster.name, command=OVN_WIPE))
    core = client.CoreV1Api(_api_when_up(ctx))
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
    deadline = time.monotonic() + 600
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


# --- verification -----------------------------------------------------------------------------------------


def _api_when_up(ctx: StepContext) -> Any:
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


def _verify(ctx: StepContext) -> Outcome:
    nodes = call(ctx.cluster, client.CoreV1Api(_api_when_up(ctx)).list_node).items
    health = _etcd_healthy(ctx)
    if not health.ok:
        return health
    revision = _revision(ctx)
    backup = ctx.vars["backup"]
    return Outcome(
        True,
        msg(
            "manual_restore.verified",
            members=len(ctx.cluster.hosts),
            nodes=len(nodes),
            revision=revision,
            snapshot_revision=backup.get("revision"),
            snapshot=backup["snapshot"],
        ),
        details=health.details,
    )


def _revision(ctx: StepContext) -> str:
    (result,) = ctx.run(
        [ctx.cluster.host(ctx.vars["recovery_host"])],
        ENDPOINT_STATUS.replace("-w table", "-w json"),
        sudo=True,
        timeout=60,
    )
    found = result.stdout.split('"revision":')
    return found[1].split(",")[0].strip() if len(found) > 1 else "?"


def report(vars: Mapping[str, Any]) -> Msg:
    return msg(
        "manual_restore.report",
        snapshot=vars["backup"]["snapshot"],
        initial_cluster=vars["initial_cluster"],
        old=OLD_MEMBER_DATA,
    )


def _steps() -> Sequence[Any]:
    return (
        *preflight_steps(section=SECTION, script=CLUSTER_RESTORE),
        Command(
            id="read-etcd-parameters",
            title=msg("manual_restore.step.parameters"),
            section=_step(5),
            on=ALL_HOSTS,
            command=_parameters_command,
            sudo=True,
            timeout=60,
            check=_parameters_read,
        ),
        Command(
            id="generate-uuid",
            title=msg("manual_restore.step.uuid"),
            section=_step(5),
            on=host_in("recovery_host"),
            command="uuidgen",
            timeout=30,
            check=_uuid_generated,
        ),
        Command(
            id="check-snapshot-on-hosts",
            title=msg("manual_restore.step.check_snapshot"),
            section=_step(2),
            on=ALL_HOSTS,
            command=_snapshot_check_command,
            sudo=True,
            timeout=600,
            check=_snapshot_checked,
        ),
        Call(
            id="copy-snapshot",
            title=msg("manual_restore.step.copy_snapshot"),
            section=_step(2),
            when=_copy_needed,
            when_text=msg("manual_restore.when.copy"),
            call=_copy_snapshot,
        ),
        Approval(
            id="approve-start",
            title=msg("manual_restore.step.start"),
            section=f"{SECTION} (prerequisites)",
            prompt=_start_prompt,
        ),
        Command(
            id="stop-static-pods",
            title=msg("manual_restore.step.stop_pods"),
            section=_step(3),
            on=ALL_HOSTS,
            serial=True,
            command=stop_static_pods_command,
            sudo=True,
            timeout=4 * STOP_WAIT + 120,
            destructive=True,
            check=_on_every_host("manual_restore.pods_stopped"),
        ),
        Command(
            id="save-member-data",
            title=msg("manual_restore.step.save_member"),
            section=_step(4),
            on=ALL_HOSTS,
            command=save_member_data_command,
            sudo=True,
            timeout=300,
            destructive=True,
            check=_on_every_host("manual_restore.member_saved"),
        ),
        Call(
            id="restore-snapshot",
            title=msg("manual_restore.step.restore"),
            section=_step(6),
            call=_restore,
            destructive=True,
        ),
        Call(
            id="compare-member-lines",
            title=msg("manual_restore.step.compare"),
            section=_step(6),
            call=_compare,
        ),
        Approval(
            id="approve-member-mismatch",
            title=msg("manual_restore.step.mismatch"),
            section=_step(6),
            when=_only_when_different,
            when_text=msg("manual_restore.when.mismatch"),
            prompt=_mismatch_prompt,
        ),
        Command(
            id="move-restored-member",
            title=msg("manual_restore.step.move_member"),
            section=_step(7),
            on=ALL_HOSTS,
            command=move_member_command,
            sudo=True,
            timeout=300,
            check=_moved,
            destructive=True,
        ),
        Command(
            id="start-etcd",
            title=msg("manual_restore.step.start_etcd"),
            section=_step(8),
            on=ALL_HOSTS,
            serial=True,
            command=start_etcd_command,
            sudo=True,
            timeout=START_WAIT + 60,
            check=_on_every_host("manual_restore.etcd_started"),
        ),
        Call(
            id="check-etcd", title=msg("manual_restore.step.check_etcd"), section=_step(9), call=_etcd_healthy
        ),
        Command(
            id="start-static-pods",
            title=msg("manual_restore.step.start_pods"),
            section=_step(10),
            on=ALL_HOSTS,
            serial=True,
            command=start_static_pods_command,
            sudo=True,
            timeout=3 * START_WAIT + 60,
            check=_on_every_host("manual_restore.pods_started"),
        ),
        Command(
            id="restart-kubelet",
            title=msg("manual_restore.step.kubelet"),
            section=_step(10),
            on=ALL_HOSTS,
            command=restart_kubelet_command,
            sudo=True,
            timeout=START_WAIT + 60,
            check=_on_every_host("manual_restore.kubelet_restarted"),
        ),
        Call(
            id="wipe-ovn-databases",
            title=msg("manual_restore.step.ovn"),
            section=_step(10),
            when=_ovn_applies,
            when_text=msg("manual_restore.when.ovn"),
            call=_wipe_ovn,
            destructive=True,
        ),
        Call(
            id="verify-cluster",
            title=msg("manual_restore.step.verify"),
            section=f"{SECTION} (verification)",
            call=_verify,
        ),
    )


PROCEDURE = Procedure(
    name="restore-manual",
    title=msg("manual_restore.title"),
    section=SECTION,
    parameters={
        "backup": msg("manual_restore.param.backup"),
        "recovery-host": msg("manual_restore.param.recovery_host"),
    },
    report=report,
    steps=tuple(_steps()),
)
