"""The checks before any restore from an etcd backup (5.4.2.2 and 5.4.2.3): they change nothing.

Shared by the restore procedures. `preflight_steps(...)` returns, in order, the checks 1–5; each
procedure then places its start approval (6) after them, with `start_prompt` or a prompt of its own
(the manual restore checks more before it asks):

1. `probe-hosts` (Command, every control-plane host): SSH answers, the host's tools and state
   (restore script, etcd scripts, kubelet, etcd data, keepalived manifest and its VIPs, the
   release version in the static-pod resources, /etc/mco/proxy.env, the backup files in the backup
   directory). Any host that cannot be reached stops the run here: the runbook needs every
   control-plane host (5.4.2.2 step 2). So does a backup file name or VIP that does not match its
   pattern (restore_values.py): the hosts do not vouch for each other.
2. `check-recovery-host` (Call): the `recovery-host=` option, if given, must name a control-plane
   host that is healthy and holds the backup; otherwise the reason is given.
3. `choose-recovery-host` (Choice, var `recovery_host`): among the healthy hosts that hold a
   complete backup; preset by `recovery-host=HOST`, taken without asking when only one qualifies.
4. `check-backup` (Command, recovery host): the newest snapshot_<ts>.db (a checked name) has its
   static_kuberesources_<ts>.tar.gz (cluster-restore.sh takes the newest of each), etcdctl can
   read the snapshot, and backup-info_<ts>.json says which version the backup belongs to.
5. `check-cluster` (Call): the cluster version (API, else the hosts' static-pod resources) must be
   the backup's z-stream; the cluster-wide proxy (API, else /etc/mco/proxy.env) to export; admission
   webhooks with failurePolicy Fail (they can block pods during the restore); the VIPs (the
   Infrastructure object, else the hosts' keepalived.yaml), saying where they came from.
6. `approve-start` (Approval, destructive): the prompt summarises all of the above; someone other
   than the requester must approve.

Parameters (`Procedure.parameters`): `backup` (directory on the recovery host, default the cluster's
backup_dir) and `recovery-host`. Run variables set for later steps: `hosts` (facts per host),
`recovery_host`, `backup` (dir, snapshot, resources, timestamp, sizes, revision, info),
`backup_version`, `cluster_version`, `version_source`, `proxy_env`, `webhooks_fail`, `vips`
({"api": [...], "ingress": [...]}: from the Infrastructure object when the API answers and has them,
else from the hosts' keepalived.yaml), `vips_source` ({"from": "infrastructure"} or {"from":
"keepalived", "hosts": [...]}, {} when none were found), `keepalived_hosts`, `api_up`.

    *preflight_steps(section="5.4.2.2", script=CLUSTER_RESTORE),
    Approval(id="approve-start", title=msg("restore.step.start"), section="5.4.2.2 (prerequisites)",
             prompt=start_prompt),
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from kubernetes import client

from procedures.clusters import ConfigError
from procedures.etcdctl import snapshot_status
from procedures.i18n import Msg, msg
from procedures.kube import call
from procedures.restore_values import (
    IP_ADDRESS,
    RESOURCES_NAME,
    SNAPSHOT_NAME,
    UntrustedValue,
    backup_file_problems,
    checked,
    refusal,
)
from procedures.steps import (
    ALL_HOSTS,
    Call,
    Choice,
    Command,
    CommandResult,
    Outcome,
    Step,
    StepContext,
    StepFailed,
    host_in,
)
from procedures.versions import CONFIG, PROXY_VARS, cluster_version, proxy_env

CLUSTER_RESTORE = "/usr/local/bin/cluster-restore.sh"
ETCD_SCRIPTS = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env"
KEEPALIVED_MANIFEST = "/etc/kubernetes/manifests/keepalived.yaml"
KAS_VERSION_FILES = (
    "/etc/kubernetes/static-pod-resources/kube-apiserver-pod-*/configmaps/kube-apiserver-pod/version"
)
"""Each kube-apiserver revision records the release it belongs to; the newest tells the running version."""
MCO_PROXY_ENV = "/etc/mco/proxy.env"
"""Where the machine-config operator writes the cluster-wide proxy on every node."""
KEEPALIVED_BYTES = 262144
"""The probe reads at most this much of keepalived.yaml (the machine-config operator's is about 10 KiB)."""
VIP_FLAGS = {"--api-vip": "api", "--api-vips": "api", "--ingress-vip": "ingress", "--ingress-vips": "ingress"}
"""The flags runtimecfg and dynkeepalived take the VIPs with: one address, or (4.12+) a comma-joined list."""


def backup_dir(ctx: StepContext) -> str:
    return ctx.params.get("backup") or ctx.cluster.backup_dir


# --- 1. probe every control-plane host ----------------------------------------------------------


PROBE_FACTS = frozenset(
    {
        "restore_script",
        "etcd_scripts",
        "kubelet",
        "etcd_running",
        "etcd_data",
        "keepalived",
        "version",
        "free_kib",
    }
)
"""The key=value facts probe_command prints."""


def probe_command(script: str, directory: str) -> str:
    """One key=value line per fact, then file=NAME per backup file, then proxy:LINE per proxy.env line.

    `ls -b` prints a newline or other control character in a file name as a C escape: one name is one
    line, and a name with such a character fails its pattern instead of passing as two names."""
    quoted = shlex.quote(directory)
    return "; ".join(
        (
            f"echo restore_script=$(test -x {shlex.quote(script)} && echo yes || echo no)",
            f"echo etcd_scripts=$(test -f {ETCD_SCRIPTS} && echo yes || echo no)",
            "echo kubelet=$(systemctl is-active kubelet 2>/dev/null || true)",
            "echo etcd_running=$(crictl ps --label io.kubernetes.container.name=etcd -q 2>/dev/null"
            " | head -1)",
            "echo etcd_data=$(test -d /var/lib/etcd/member && echo yes || echo no)",
            f"echo keepalived=$(test -f {KEEPALIVED_MANIFEST} && echo yes || echo no)",
            f"(head -c {KEEPALIVED_BYTES} {KEEPALIVED_MANIFEST} 2>/dev/null"
            " | awk '{print \"keepalived:\" $0}')",
            f"echo version=$(cat $(ls -vd {KAS_VERSION_FILES} 2>/dev/null | tail -1) 2>/dev/null)",
            "echo free_kib=$(df -Pk /var/lib | awk 'NR==2 {print $4}')",
            f"(cd {quoted} 2>/dev/null && ls -1bv snapshot*.db static_kuberesources*.tar.gz "
            "backup-info_*.json 2>/dev/null | sed 's/^/file=/')",
            f"(test -r {MCO_PROXY_ENV} && sed 's/^/proxy:/' {MCO_PROXY_ENV}; true)",
        )
    )


def vip_arguments(items: Sequence[Any]) -> list[tuple[str, str]]:
    """(kind, value) for each VIP flag in a container's command: `--api-vips` then the value as the next
    item (the machine-config operator's layout), or `--api-vips=VALUE` in one item."""
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            continue
        flag, equals, value = item.partition("=")
        if flag not in VIP_FLAGS:
            continue
        if equals:
            found.append((VIP_FLAGS[flag], value))
        elif index + 1 < len(items):
            found.append((VIP_FLAGS[flag], str(items[index + 1])))
    return found


def keepalived_vips(text: str) -> dict[str, list[str]]:
    """The VIPs keepalived.yaml gives its containers (init containers included), as written, unchecked.

    The manifest is a YAML pod; only list items of `command` and `args` count, not words inside a
    shell script (`--api-vips "${api_vips}"`). ValueError when the text is not a pod."""
    try:
        pod = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"not YAML: {str(error).splitlines()[0]}") from None
    spec = pod.get("spec") if isinstance(pod, dict) else None
    if not isinstance(spec, dict):
        raise ValueError("not a pod (no spec)")
    vips: dict[str, list[str]] = {"api": [], "ingress": []}
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        for container in containers if isinstance(containers, list) else []:
            if not isinstance(container, dict):
                continue
            items = [
                item
                for field in ("command", "args")
                if isinstance(container.get(field), list)
                for item in container[field]
            ]
            for kind, value in vip_arguments(items):
                vips[kind] += [a for a in value.split(",") if a and a not in vips[kind]]
    return vips


def parse_probe(stdout: str) -> dict[str, Any]:
    """The facts one host reported (see probe_command); `vips` from its keepalived.yaml, unchecked
    (untrusted_facts checks them), `keepalived_error` when that file is not a pod."""
    facts: dict[str, Any] = {"files": [], "proxy": {}, "vips": {"api": [], "ingress": []}}
    manifest = []
    for line in stdout.splitlines():
        if line.startswith("file="):
            facts["files"].append(line.removeprefix("file="))
        elif line.startswith("proxy:"):
            name, _, value = line.removeprefix("proxy:").partition("=")
            if name.strip() in PROXY_VARS.values() and value.strip():
                facts["proxy"][name.strip()] = value.strip().strip('"')
        elif line.startswith("keepalived:"):
            manifest.append(line.removeprefix("keepalived:"))
        elif "=" in line:
            # Only the probe's own facts, each once: a host file echoed into the output (the version
            # file) must not replace the lists above or a fact printed before it.
            key, _, value = line.partition("=")
            if key.strip() in PROBE_FACTS and key.strip() not in facts:
                facts[key.strip()] = value.strip()
    if manifest:
        try:
            facts["vips"] = keepalived_vips("\n".join(manifest))
        except ValueError as error:
            facts["keepalived_error"] = str(error)
    return facts


def newest_backup(files: Sequence[str]) -> tuple[str, str, str] | None:
    """(snapshot, resources, timestamp) as cluster-restore.sh would pick them, if they belong together."""
    snapshots = [f for f in files if f.startswith("snapshot_") and f.endswith(".db")]
    tarballs = [f for f in files if f.startswith("static_kuberesources_") and f.endswith(".tar.gz")]
    if not snapshots or not tarballs:
        return None
    snapshot, resources = snapshots[-1], tarballs[-1]
    stamp = snapshot.removeprefix("snapshot_").removesuffix(".db")
    if resources != f"static_kuberesources_{stamp}.tar.gz":
        return None
    return snapshot, resources, stamp


def host_problems(facts: Mapping[str, Any], script: str) -> list[str]:
    """Why a reachable host cannot be the recovery host (empty: it can)."""
    problems = []
    if facts.get("restore_script") != "yes":
        problems.append(f"no {script}")
    if facts.get("etcd_scripts") != "yes":
        problems.append("no etcd scripts (etcd.env) in the static-pod resources")
    if facts.get("kubelet") != "active":
        problems.append(f"kubelet is {facts.get('kubelet') or 'not running'}")
    return problems


def backup_problem(facts: Mapping[str, Any], directory: str) -> str:
    """Why the host's backup directory does not hold a usable backup (empty: it does)."""
    files: list[str] = list(facts.get("files", []))
    if not any(f.startswith("snapshot_") for f in files):
        return f"no snapshot_<ts>.db in {directory}"
    if not any(f.startswith("static_kuberesources_") for f in files):
        return f"no static_kuberesources_<ts>.tar.gz in {directory}"
    if newest_backup(files) is None:
        return f"the newest snapshot and resources tarball in {directory} are not from the same backup"
    return ""


def infrastructure_vips(infrastructure: Mapping[str, Any]) -> dict[str, list[str]]:
    """The VIPs in the Infrastructure object: `status.platformStatus.<platform>.apiServerInternalIPs` and
    `ingressIPs` (the singular fields before 4.12); empty on platforms without them. Each is checked:
    UntrustedValue when one is not an IP address."""
    status = infrastructure.get("status")
    platform = status.get("platformStatus") if isinstance(status, dict) else None
    section = platform.get(str(platform.get("type") or "").lower()) if isinstance(platform, dict) else None
    if not isinstance(section, dict):
        section = {}
    vips: dict[str, list[str]] = {}
    for kind, plural, singular in (
        ("api", "apiServerInternalIPs", "apiServerInternalIP"),
        ("ingress", "ingressIPs", "ingressIP"),
    ):
        given = section.get(plural) or section.get(singular) or []
        if not isinstance(given, list):
            given = [given]
        vips[kind] = [
            checked(str(a), IP_ADDRESS, what=f"the {kind} VIP", source="the Infrastructure object")
            for a in given
        ]
    return vips


def untrusted_facts(facts: Mapping[str, Any], directory: str) -> list[UntrustedValue]:
    """The values of a host's probe that do not match their patterns: backup file names and VIPs."""
    vips = [
        error
        for kind, addresses in facts["vips"].items()
        for address in addresses
        if (error := refusal(address, IP_ADDRESS, what=f"the {kind} VIP", source=KEEPALIVED_MANIFEST))
    ]
    return [*backup_file_problems(list(facts.get("files", [])), directory), *vips]


def untrusted_outcome(problems: Sequence[tuple[str, UntrustedValue]]) -> Outcome:
    """The run stops: the hosts and what each gave that does not match its pattern."""
    text = "; ".join(f"{host}: {error}" for host, error in problems)
    return Outcome(False, msg("preflight.untrusted_values", problems=text))


def _probed(script: str) -> Any:
    def check(ctx: StepContext, results: list[CommandResult]) -> Outcome:
        unreachable = [r for r in results if r.exit_code is None or r.exit_code == 255]
        if unreachable:
            names = "; ".join(
                f"{r.host}: {r.error or (r.stderr or r.stdout).strip()[-200:]}" for r in unreachable
            )
            return Outcome(False, msg("preflight.hosts_unreachable", hosts=names))
        failed = [r for r in results if not r.ok]
        if failed:
            names = "; ".join(
                f"{r.host}: exit {r.exit_code} {(r.stderr or r.stdout).strip()[-200:]}" for r in failed
            )
            return Outcome(False, msg("preflight.probe_failed", hosts=names))
        hosts = {r.host: parse_probe(r.stdout) for r in results}
        directory = backup_dir(ctx)
        untrusted = [
            (name, error) for name, facts in hosts.items() for error in untrusted_facts(facts, directory)
        ]
        if untrusted:
            return untrusted_outcome(untrusted)
        lines = []
        for name, facts in hosts.items():
            problems = host_problems(facts, script)
            missing = backup_problem(facts, directory)
            facts["problems"] = problems
            facts["backup_problem"] = missing
            state = "etcd running" if facts.get("etcd_running") else "etcd not running"
            lines.append(
                f"{name}: {state}; "
                + ("; ".join(problems) if problems else "can be the recovery host")
                + f"; backup: {missing or 'complete'}"
                + keepalived_text(facts)
            )
        keepalived = [name for name, facts in hosts.items() if facts.get("keepalived") == "yes"]
        vips: dict[str, list[str]] = {"api": [], "ingress": []}
        for facts in hosts.values():
            for kind in vips:
                vips[kind] += [a for a in facts["vips"][kind] if a not in vips[kind]]
        found_on = [name for name, facts in hosts.items() if any(facts["vips"].values())]
        return Outcome(
            True,
            msg("preflight.hosts_reachable", count=len(hosts)),
            details="\n".join(lines),
            vars={
                "hosts": hosts,
                "keepalived_hosts": keepalived,
                "vips": vips,
                "vips_source": {"from": "keepalived", "hosts": found_on} if found_on else {},
            },
        )

    return check


def keepalived_text(facts: Mapping[str, Any]) -> str:
    """What a host's probe line says about its keepalived.yaml (nothing when it has none)."""
    if facts.get("keepalived_error"):
        return f"; {KEEPALIVED_MANIFEST}: {facts['keepalived_error']}, no VIPs read"
    if facts.get("keepalived") != "yes":
        return ""
    vips = facts["vips"]
    return (
        f"; keepalived VIPs: API {', '.join(vips['api']) or '-'}, ingress {', '.join(vips['ingress']) or '-'}"
    )


# --- 2./3. the recovery host -----------------------------------------------------------------------


def candidates(ctx: StepContext) -> list[str]:
    hosts: Mapping[str, Mapping[str, Any]] = ctx.vars["hosts"]
    return [name for name, facts in hosts.items() if not facts["problems"] and not facts["backup_problem"]]


def _check_recovery_host(ctx: StepContext) -> Outcome:
    wanted = ctx.params.get("recovery-host")
    usable = candidates(ctx)
    hosts: Mapping[str, Mapping[str, Any]] = ctx.vars["hosts"]
    if wanted is None:
        if not usable:
            reasons = "; ".join(
                f"{name}: {', '.join(filter(None, [*facts['problems'], facts['backup_problem']]))}"
                for name, facts in hosts.items()
            )
            raise StepFailed(msg("preflight.no_recovery_host", dir=backup_dir(ctx), reasons=reasons))
        return Outcome(True, msg("preflight.recovery_candidates", hosts=", ".join(usable)))
    try:
        ctx.cluster.host(wanted)
    except ConfigError:
        known = ", ".join(h.name for h in ctx.cluster.hosts)
        raise StepFailed(msg("preflight.not_control_plane", host=wanted, hosts=known)) from None
    facts = hosts[wanted]
    if facts["problems"]:
        raise StepFailed(
            msg("preflight.recovery_unhealthy", host=wanted, problems="; ".join(facts["problems"]))
        )
    if facts["backup_problem"]:
        raise StepFailed(msg("preflight.recovery_no_backup", host=wanted, problem=facts["backup_problem"]))
    return Outcome(True, msg("preflight.recovery_given", host=wanted))


# --- 4. the backup on the recovery host ------------------------------------------------------------


def backup_command(ctx: StepContext) -> str:
    directory = shlex.quote(backup_dir(ctx))
    return (
        f"cd {directory} || exit 4; "
        "snap=$(ls -bv snapshot_*.db 2>/dev/null | tail -1); "
        "res=$(ls -bv static_kuberesources_*.tar.gz 2>/dev/null | tail -1); "
        'test -n "$snap" || exit 5; test -n "$res" || exit 6; '
        "ts=${snap#snapshot_}; ts=${ts%.db}; "
        'test "$res" = "static_kuberesources_$ts.tar.gz" || { echo "$snap $res"; exit 7; }; '
        'echo "snapshot=$snap $(stat -c %s "$snap")"; echo "resources=$res $(stat -c %s "$res")"; '
        'echo "info=$(tr -d "\\n" < "backup-info_$ts.json" 2>/dev/null)"; '
        + 'echo "status=$('
        + snapshot_status('"$snap"')
        + ')"'
    )


BACKUP_EXITS = {
    4: "preflight.backup_no_dir",
    5: "preflight.backup_no_snapshot",
    6: "preflight.backup_no_resources",
    7: "preflight.backup_mismatch",
}


def parse_backup(stdout: str, directory: str) -> dict[str, Any]:
    """The backup facts from backup_command's output; UntrustedValue when a file name is not a backup's."""
    fields = dict(line.partition("=")[::2] for line in stdout.splitlines() if "=" in line)
    snapshot, _, snapshot_size = fields.get("snapshot", "").rpartition(" ")
    resources, _, resources_size = fields.get("resources", "").rpartition(" ")
    if not snapshot or not resources:
        raise StepFailed(msg("preflight.backup_unreadable", output=stdout[-300:]))
    checked(snapshot, SNAPSHOT_NAME, what="the file name", source=directory)
    checked(resources, RESOURCES_NAME, what="the file name", source=directory)
    try:
        status = json.loads(fields.get("status") or "")
    except json.JSONDecodeError:
        raise StepFailed(msg("preflight.snapshot_corrupt", snapshot=snapshot, output=stdout[-300:])) from None
    try:
        info = json.loads(fields["info"]) if fields.get("info") else {}
    except json.JSONDecodeError:
        info = {}
    return {
        "snapshot": snapshot,
        "snapshot_size": int(snapshot_size or 0),
        "resources": resources,
        "resources_size": int(resources_size or 0),
        "timestamp": snapshot.removeprefix("snapshot_").removesuffix(".db"),
        "revision": status.get("revision"),
        "total_keys": status.get("totalKey"),
        "info": info,
    }


def _backup_checked(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    (result,) = results
    directory = backup_dir(ctx)
    if result.exit_code in BACKUP_EXITS:
        key = BACKUP_EXITS[result.exit_code]
        return Outcome(False, msg(key, host=result.host, dir=directory, files=result.stdout.strip()))
    if not result.ok:
        reason = result.error or (result.stderr or result.stdout).strip()[-300:]
        return Outcome(False, msg("preflight.backup_failed", host=result.host, reason=reason))
    try:
        backup = parse_backup(result.stdout, directory)
    except UntrustedValue as error:
        return untrusted_outcome([(result.host, error)])
    backup.update(host=result.host, dir=directory)
    version = str(backup["info"].get("cluster_version") or "")
    return Outcome(
        True,
        msg(
            "preflight.backup_ok",
            host=result.host,
            snapshot=backup["snapshot"],
            resources=backup["resources"],
            revision=backup["revision"],
            version=version or "?",
        ),
        vars={"backup": backup, "backup_version": version},
    )


# --- 5. the cluster: version, proxy, webhooks --------------------------------------------------------


def same_z_stream(a: str, b: str) -> bool:
    """4.14.38 and 4.14.38 are; 4.14.37 and 4.14.38 are not. Build suffixes (+…) are ignored."""
    return a.split("+")[0].strip() == b.split("+")[0].strip()


def failing_webhooks(configurations: Sequence[Mapping[str, Any]], kind: str) -> list[str]:
    """`kind/name/webhook` for every webhook whose failurePolicy is Fail (the v1 default when unset)."""
    found = []
    for configuration in configurations:
        name = configuration.get("metadata", {}).get("name", "?")
        for hook in configuration.get("webhooks") or []:
            if (hook.get("failurePolicy") or "Fail") == "Fail":
                found.append(f"{kind}/{name}/{hook.get('name', '?')}")
    return found


def _read_webhooks(ctx: StepContext) -> list[str]:
    api = ctx.kube()
    admission = client.AdmissionregistrationV1Api(api)
    validating = call(ctx.cluster, admission.list_validating_webhook_configuration)
    mutating = call(ctx.cluster, admission.list_mutating_webhook_configuration)
    plain = api.sanitize_for_serialization
    return failing_webhooks([plain(c) for c in validating.items], "validating") + failing_webhooks(
        [plain(c) for c in mutating.items], "mutating"
    )


def _check_cluster(ctx: StepContext) -> Outcome:
    recovery = ctx.vars["hosts"][ctx.vars["recovery_host"]]
    backup_version = str(ctx.vars.get("backup_version") or "")
    api_up = True
    try:
        objects = client.CustomObjectsApi(ctx.kube())
        version, source = cluster_version(ctx, objects), "api"
        proxy = proxy_env(ctx, objects)
        webhooks: list[str] | None = _read_webhooks(ctx)
        infrastructure = call(
            ctx.cluster, objects.get_cluster_custom_object, *CONFIG, "infrastructures", "cluster"
        )
    except StepFailed:
        api_up = False
        version, source = str(recovery.get("version") or ""), "hosts" if recovery.get("version") else ""
        proxy = dict(recovery.get("proxy") or {})
        webhooks = None
        infrastructure = {}
    try:
        api_vips = infrastructure_vips(infrastructure)
    except UntrustedValue as error:
        return untrusted_outcome([("the API", error)])
    if any(api_vips.values()):
        vips, vips_source = api_vips, {"from": "infrastructure"}
    else:
        vips, vips_source = ctx.vars["vips"], ctx.vars.get("vips_source") or {}
    if version and backup_version and not same_z_stream(version, backup_version):
        raise StepFailed(msg("preflight.z_stream_mismatch", backup=backup_version, cluster=version))
    if not version or not backup_version:
        verdict = msg("preflight.version_unknown", backup=backup_version or "?", cluster=version or "?")
    else:
        verdict = msg("preflight.version_same", version=version)
    return Outcome(
        True,
        msg(
            "preflight.cluster_checked",
            versions=verdict.to_json(),
            proxy=", ".join(sorted(proxy)) or "-",
            webhooks=webhooks_text(webhooks).to_json(),
            vips=vips_text(vips, vips_source).to_json(),
        ),
        vars={
            "cluster_version": version,
            "version_source": source,
            "proxy_env": proxy,
            "webhooks_fail": webhooks,
            "api_up": api_up,
            "vips": vips,
            "vips_source": vips_source,
        },
    )


def vips_text(vips: Mapping[str, Sequence[str]], source: Mapping[str, Any]) -> Msg:
    """The VIPs the restore will remove and check, and where they came from."""
    api, ingress = ", ".join(vips["api"]) or "-", ", ".join(vips["ingress"]) or "-"
    if source.get("from") == "infrastructure":
        return msg("preflight.vips_infrastructure", api=api, ingress=ingress)
    if source.get("from") == "keepalived":
        hosts = ", ".join(source["hosts"])
        return msg(
            "preflight.vips_keepalived", api=api, ingress=ingress, manifest=KEEPALIVED_MANIFEST, hosts=hosts
        )
    return msg("preflight.vips_none", manifest=KEEPALIVED_MANIFEST)


def webhooks_text(webhooks: list[str] | None) -> Msg:
    if webhooks is None:
        return msg("preflight.webhooks_unknown")
    if not webhooks:
        return msg("preflight.webhooks_none")
    return msg("preflight.webhooks_fail", webhooks=", ".join(webhooks))


# --- 6. the start approval ---------------------------------------------------------------------------


def versions_text(vars: Mapping[str, Any]) -> Msg:
    """What the start prompt says about the versions (check-cluster stopped the run if they differ)."""
    version, backup_version = vars.get("cluster_version") or "", vars.get("backup_version") or ""
    if version and backup_version:
        return msg("preflight.version_same", version=version)
    return msg("preflight.version_unknown", backup=backup_version or "?", cluster=version or "?")


def start_prompt(ctx: StepContext) -> Msg:
    vars = ctx.vars
    backup = vars["backup"]
    others = [h.name for h in ctx.cluster.hosts if h.name != vars["recovery_host"]]
    return msg(
        "preflight.start_prompt",
        cluster=ctx.cluster.name,
        recovery=vars["recovery_host"],
        others=", ".join(others) or "-",
        dir=backup["dir"],
        snapshot=backup["snapshot"],
        resources=backup["resources"],
        revision=backup.get("revision"),
        versions=versions_text(vars).to_json(),
        proxy=", ".join(sorted(vars.get("proxy_env") or {})) or "-",
        webhooks=webhooks_text(vars.get("webhooks_fail")).to_json(),
    )


def preflight_steps(*, section: str, script: str) -> tuple[Step, ...]:
    """The preflight checks of a restore; they change nothing.

    `section` is the runbook section the procedure implements ("5.4.2.2" or "5.4.2.3"); `script` is
    the tool the recovery host must have (cluster-restore.sh for 5.4.2.2).
    """
    prerequisites = f"{section} (prerequisites)"
    return (
        Command(
            id="probe-hosts",
            title=msg("preflight.step.probe"),
            section=f"{section} step 2",
            on=ALL_HOSTS,
            command=lambda ctx: probe_command(script, backup_dir(ctx)),
            sudo=True,
            timeout=30,
            check=_probed(script),
        ),
        Call(
            id="check-recovery-host",
            title=msg("preflight.step.check_recovery_host"),
            section=f"{section} step 1",
            call=_check_recovery_host,
        ),
        Choice(
            id="choose-recovery-host",
            title=msg("preflight.step.choose_recovery_host"),
            section=f"{section} step 1",
            var="recovery_host",
            options=candidates,
            prompt=msg("preflight.choose_prompt"),
        ),
        Command(
            id="check-backup",
            title=msg("preflight.step.check_backup"),
            section=f"{section} step 3",
            on=host_in("recovery_host"),
            command=backup_command,
            sudo=True,
            timeout=60,
            check=_backup_checked,
        ),
        Call(
            id="check-cluster",
            title=msg("preflight.step.check_cluster"),
            section=prerequisites,
            call=_check_cluster,
        ),
    )
