"""The restore's work on the control-plane hosts (5.4.2.2 steps 4–12): commands and what their output means.

The parsers read the same output an engineer reads in the runbook: `crictl ps` filtered with the
runbook's `grep … | egrep -v …`, `ip -o address`, `etcdctl member list -w json`.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from procedures.i18n import Msg, msg
from procedures.restore_preflight import CLUSTER_RESTORE, backup_dir
from procedures.restore_values import DEVICE, IP_INTERFACE, UntrustedValue, checked
from procedures.steps import CommandResult, Outcome, StepContext, StepFailed, all_ok

MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_PKI = "/var/lib/kubelet/pki"
OVN_DATABASES = ("/var/lib/ovn/etc", "/var/lib/ovn-ic/etc")
"""nbdb/sbdb files: /var/lib/ovn/etc up to 4.13, /var/lib/ovn-ic/etc with OVN interconnect (4.14+)."""


# --- parsers -----------------------------------------------------------------------------------------


def runbook_grep(stdout: str, include: str, exclude: Sequence[str]) -> list[str]:
    """`crictl ps | grep INCLUDE | egrep -v "A|B"`: the lines the runbook says must be empty."""
    return [
        line for line in stdout.splitlines() if include in line and not any(word in line for word in exclude)
    ]


def container_lines(stdout: str) -> list[str]:
    """The container rows of a `crictl ps` table (the header dropped)."""
    return [line for line in stdout.splitlines() if line.strip() and not line.startswith("CONTAINER")]


@dataclass(frozen=True)
class Address:
    device: str
    cidr: str

    @property
    def ip(self) -> str:
        return self.cidr.split("/", 1)[0]


ADDRESS_LINE = re.compile(r"^\d+:\s+(\S+)\s+inet6?\s+(\S+)")


def parse_ip_addresses(stdout: str) -> list[Address]:
    """`ip -o address`: one Address per line (device, address/prefix)."""
    found = []
    for line in stdout.splitlines():
        match = ADDRESS_LINE.match(line.strip())
        if match:
            found.append(Address(match.group(1), match.group(2)))
    return found


def vips_held(stdout: str, vips: Sequence[str]) -> list[Address]:
    """The VIPs among a host's addresses (`ip -o address | egrep '<api_vip>|<ingress_vip>'`)."""
    return [a for a in parse_ip_addresses(stdout) if a.ip in vips]


def parse_members(stdout: str) -> list[dict[str, Any]]:
    """`etcdctl member list -w json`: the members, each with name, peer and client URLs."""
    try:
        document = json.loads(stdout[stdout.index("{") :])
    except (ValueError, json.JSONDecodeError):
        raise StepFailed(msg("restore.members_unreadable", output=stdout[-300:])) from None
    return [
        {
            "id": format(int(m.get("ID", 0)), "x"),
            "name": m.get("name", ""),
            "started": bool(m.get("name")) and bool(m.get("clientURLs")),
            "peer_urls": m.get("peerURLs", []),
        }
        for m in document.get("members", [])
    ]


# --- commands ----------------------------------------------------------------------------------------


def move_manifest_command(manifest: str) -> str:
    """`sudo mv -v /etc/kubernetes/manifests/X /tmp`; a manifest already moved is reported, not an error."""
    path = f"{MANIFESTS}/{manifest}"
    return f"if [ -f {path} ]; then mv -v {path} /tmp; else echo '{manifest} is not in {MANIFESTS}'; fi"


MOVE_ETCD_DATA = (
    "if [ ! -e /var/lib/etcd ]; then echo 'no /var/lib/etcd: already moved aside'; exit 0; fi; "
    "if [ -e /tmp/etcd ]; then mv -v /var/lib/etcd/ /tmp/etcd-$(date +%Y%m%d%H%M%S); "
    "else mv -v /var/lib/etcd/ /tmp; fi"
)
"""`sudo mv -v /var/lib/etcd/ /tmp`; next to, never into, a /tmp/etcd an earlier restore left behind."""


def restore_command(ctx: StepContext) -> str:
    """`sudo -E cluster-restore.sh DIR` with the cluster-wide proxy exported (5.4.2.2 steps 7–8)."""
    exports = "".join(
        f"export {name}={shlex.quote(value)}; "
        for name, value in dict(ctx.vars.get("proxy_env") or {}).items()
    )
    return f"{exports}{CLUSTER_RESTORE} {shlex.quote(backup_dir(ctx))}"


def restored(ctx: StepContext, results: list[CommandResult]) -> Outcome:
    (result,) = results
    output = (result.stdout + result.stderr).strip()
    tail = "\n".join(output.splitlines()[-25:])
    if result.ok:
        return Outcome(
            True,
            msg("restore.script_done", host=result.host),
            details=tail,
            vars={"restored_at": time.time()},
        )
    last = output.splitlines()[-1] if output else (result.error or "")
    return Outcome(
        False,
        msg(
            "restore.script_failed",
            host=result.host,
            code=result.exit_code if result.exit_code is not None else "-",
            last=last[-300:] or result.error,
            state=script_state(output).to_json(),
        ),
        details=tail,
    )


def script_state(output: str) -> Msg:
    """Where cluster-restore.sh stopped, read from its own progress lines (4.12–4.17 wording)."""
    if "starting restore-etcd static pod" in output or "starting snapshot restore" in output:
        return msg("restore.state.after_restore_pod")
    if "Moving etcd data-dir" in output:
        return msg("restore.state.data_moved")
    if "...stopping" in output:
        return msg("restore.state.pods_moved")
    return msg("restore.state.untouched")


def ok_with(summary: Msg) -> Any:
    def check(ctx: StepContext, results: list[CommandResult]) -> Outcome:
        outcome = all_ok(ctx, results, summary)
        lines = "\n".join(f"[{r.host}] {(r.stdout + r.stderr).strip()}" for r in results)
        return Outcome(outcome.ok, outcome.summary, details=outcome.details or lines)

    return check


def hosts_named(ctx: StepContext, names: Sequence[str]) -> list[Any]:
    return [ctx.cluster.host(name) for name in names]


def non_recovery(ctx: StepContext) -> list[Any]:
    return [h for h in ctx.cluster.hosts if h.name != ctx.vars["recovery_host"]]


def keepalived_hosts(ctx: StepContext) -> list[str]:
    return [h.name for h in non_recovery(ctx) if h.name in ctx.vars.get("keepalived_hosts", [])]


def containers_gone(include: str, exclude: Sequence[str]) -> Any:
    """A WaitUntil condition: the runbook's crictl check is empty on every non-recovery host."""

    def condition(ctx: StepContext) -> tuple[bool, Msg]:
        results = ctx.run(non_recovery(ctx), "crictl ps", sudo=True, timeout=30)
        left = {}
        for result in results:
            if not result.ok:
                left[result.host] = result.error or f"crictl ps: exit {result.exit_code}"
                continue
            lines = runbook_grep(result.stdout, include, exclude)
            if lines:
                left[result.host] = ", ".join(_name_of(line) for line in lines)
        if not left:
            return True, msg("restore.containers_stopped", what=include)
        running = "; ".join(f"{host}: {what}" for host, what in left.items())
        return False, msg("restore.containers_running", what=include, running=running)

    return condition


def _name_of(line: str) -> str:
    columns = re.split(r"\s{2,}", line.strip())
    return columns[4] if len(columns) > 4 else line.strip()[:60]


def keepalived_gone(ctx: StepContext) -> tuple[bool, Msg]:
    hosts = hosts_named(ctx, keepalived_hosts(ctx))
    results = ctx.run(hosts, "crictl ps --name keepalived", sudo=True, timeout=30)
    left = [r.host for r in results if not r.ok or container_lines(r.stdout)]
    if not left:
        return True, msg("restore.containers_stopped", what="keepalived")
    return False, msg("restore.containers_running", what="keepalived", running=", ".join(left))


def remove_vips(ctx: StepContext) -> Outcome:
    """`ip -o address | egrep '<api_vip>|<ingress_vip>'`, then `ip address del VIP dev DEV` for each."""
    vips = [*ctx.vars["vips"]["api"], *ctx.vars["vips"]["ingress"]]
    removed = []
    for host in hosts_named(ctx, keepalived_hosts(ctx)):
        (listing,) = ctx.run([host], "ip -o address", sudo=True, timeout=30)
        if not listing.ok:
            raise StepFailed(msg("restore.ip_failed", host=host.name, reason=listing.error or listing.stderr))
        for address in vips_held(listing.stdout, vips):
            command = delete_address_command(host.name, address)
            (deleted,) = ctx.run([host], command, sudo=True, timeout=30)
            if not deleted.ok:
                raise StepFailed(
                    msg("restore.ip_failed", host=host.name, reason=deleted.error or deleted.stderr.strip())
                )
            removed.append(f"{host.name}: {address.cidr} dev {address.device}")
    return Outcome(True, msg("restore.vips_removed", removed="; ".join(removed) or "-"))


def delete_address_command(host: str, address: Address) -> str:
    """`ip address del VIP/PREFIX dev DEV`, once the prefix and the device the host printed are checked."""
    try:
        cidr = checked(address.cidr, IP_INTERFACE, what="the address", source="ip -o address")
        device = checked(address.device, DEVICE, what="the device", source="ip -o address")
    except UntrustedValue as error:
        raise StepFailed(msg("restore.untrusted_address", host=host, problem=str(error))) from None
    return f"ip address del {shlex.quote(cidr)} dev {shlex.quote(device)}"


def recovery_holds_vip(ctx: StepContext) -> tuple[bool, Msg]:
    vip = ctx.vars["vips"]["api"][0]
    host = ctx.cluster.host(ctx.vars["recovery_host"])
    (listing,) = ctx.run([host], "ip -o address", sudo=True, timeout=30)
    if listing.ok and vips_held(listing.stdout, [vip]):
        return True, msg("restore.vip_held", host=host.name, vip=vip)
    return False, msg("restore.vip_missing", host=host.name, vip=vip)


def etcd_on_recovery_host(ctx: StepContext) -> tuple[bool, list[dict[str, Any]] | None, str]:
    """(etcd container Running, `etcdctl member list` or None when it does not answer, host name).

    etcdctl runs in the etcdctl container when there is one (its environment names the endpoints and
    certificates); the restore-etcd pod has only the etcd container."""
    host = ctx.cluster.host(ctx.vars["recovery_host"])
    command = (
        "crictl ps | grep etcd | grep -Ev 'operator|etcd-guard'; "
        "id=$(crictl ps --label io.kubernetes.container.name=etcdctl -q | head -1); "
        '[ -n "$id" ] || id=$(crictl ps --label io.kubernetes.container.name=etcd -q | head -1); '
        'if [ -n "$id" ]; then crictl exec "$id" etcdctl member list -w json 2>/dev/null; fi; true'
    )
    (result,) = ctx.run([host], command, sudo=True, timeout=60)
    rows = [line for line in result.stdout.splitlines() if not line.lstrip().startswith("{")]
    running = any(_name_of(line) == "etcd" and "Running" in line for line in rows)
    members = parse_members(result.stdout) if '"members"' in result.stdout else None
    return running, members, host.name


def etcd_members_are(ctx: StepContext, expected: int) -> tuple[bool, Msg]:
    """etcd runs on the recovery host and `etcdctl member list` shows `expected` started members."""
    running, members, host = etcd_on_recovery_host(ctx)
    if not running:
        return False, msg("restore.etcd_not_running", host=host)
    if members is None:
        return False, msg("restore.etcd_no_answer", host=host)
    names = ", ".join(m["name"] or f"(unstarted {m['id']})" for m in members)
    if len(members) == expected and all(m["started"] for m in members):
        return True, msg("restore.etcd_members", count=len(members), names=names)
    return False, msg("restore.etcd_members_waiting", count=len(members), expected=expected, names=names)


def clear_pki_command() -> str:
    """Delete the kubelet's PEM files so it files new CSRs (5.4.2.2 step 9)."""
    return f"ls {KUBELET_PKI}/*.pem 2>/dev/null; rm -f {KUBELET_PKI}/*.pem"


def move_pki_command() -> str:
    """`sudo mv /var/lib/kubelet/pki/* /tmp` for a node whose OVN pod is stuck Terminating (step 15)."""
    return f"mkdir -p /tmp/kubelet-pki && mv -f {KUBELET_PKI}/* /tmp/kubelet-pki/ 2>/dev/null; true"


def remove_ovn_databases_command() -> str:
    return "; ".join(f"rm -fv {directory}/*.db" for directory in OVN_DATABASES)
