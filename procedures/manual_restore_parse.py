"""Pure parsing for the manual restore (5.4.2.3): what each host's files say, and what etcdctl printed.

Every value the restore needs about a host comes from that host's own files, as the runbook reads
them (step 5): the member name from restore-etcd-pod/pod.yaml (`export ETCD_NAME=${NODE_<x>_ETCD_NAME}`
and that variable's `value:`), the peer IP from etcd-scripts/etcd.env (`NODE_<name with . and - as
_>_IP`), the etcdctl image from etcd-pod.yaml; the restore uuid from uuidgen and the snapshot's
checksum from sha256sum. Each such value is checked against its pattern (procedures/restore_values.py)
as it is read, so nothing a host wrote reaches a command unless it is what it claims to be. Nothing
here touches SSH; the functions take text and return data or raise ParseError or UntrustedValue.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from procedures.restore_values import (
    DNS_1123_NAME,
    IMAGE,
    IP_ADDRESS,
    MEMBER_ID,
    PEER_URL,
    SHA256,
    UUID,
    checked,
)

ETCD_CONFIGMAPS = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps"
RESTORE_POD_YAML = f"{ETCD_CONFIGMAPS}/restore-etcd-pod/pod.yaml"
ETCD_ENV = f"{ETCD_CONFIGMAPS}/etcd-scripts/etcd.env"
MANIFESTS_BACKUP = "/root/manifests-backup"
ETCD_POD_FILES = ("/etc/kubernetes/manifests/etcd-pod.yaml", f"{MANIFESTS_BACKUP}/etcd-pod.yaml")
"""Where the etcdctl image is read: the manifest, or its backup once step 3 has moved it there."""
OLD_MEMBER_DATA = "/home/core/assets/old-member-data"
SNAPSHOT_MISSING = "missing"
"""What the snapshot check prints instead of a checksum on a host without the snapshot."""
ADDED_MEMBER_SOURCE = "an `added member` line of etcdctl snapshot restore"
SECTION_MARK = "@@drbot-section "
ETCD_NAME_EXPORT = re.compile(r"export\s+ETCD_NAME=\$\{?(NODE_[A-Za-z0-9_]+_ETCD_NAME)\}?")
ENV_LINE = re.compile(r'^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|\'([^\']*)\'|(\S*))\s*$')
PEER_PORT = 2380


class ParseError(ValueError):
    """A host's file or a command's output does not say what the runbook expects; the text says what."""


@dataclass(frozen=True)
class Member:
    """One control-plane host as etcd knows it: read from the host's files."""

    host: str
    name: str
    ip: str

    @property
    def peer_url(self) -> str:
        address = ipaddress.ip_address(self.ip)
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"https://{shown}:{PEER_PORT}"


def sections(output: str) -> dict[str, str]:
    """Split a probe's output into the sections it announced with `@@drbot-section NAME` lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION_MARK):
            current = found.setdefault(line[len(SECTION_MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip("\n") for name, lines in found.items()}


def etcd_name_from_restore_pod(text: str) -> str:
    """ETCD_NAME as the runbook finds it: the NODE_*_ETCD_NAME named by `export ETCD_NAME`, then its value."""
    exported = ETCD_NAME_EXPORT.search(text)
    if not exported:
        raise ParseError("restore-etcd-pod/pod.yaml has no `export ETCD_NAME=${NODE_..._ETCD_NAME}` line")
    variable = exported.group(1)
    try:
        pod = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ParseError(f"restore-etcd-pod/pod.yaml is not valid YAML: {error}") from None
    for item in _env_items(pod):
        if item.get("name") == variable and str(item.get("value") or "").strip():
            return checked(
                str(item["value"]).strip(), DNS_1123_NAME, what="ETCD_NAME", source=RESTORE_POD_YAML
            )
    raise ParseError(
        f"restore-etcd-pod/pod.yaml exports ETCD_NAME=${{{variable}}} but sets no value for {variable}"
    )


def _env_items(pod: object) -> list[dict[str, object]]:
    """The env entries of a pod's containers; what is not shaped like a pod (a host wrote it) is skipped."""
    spec = pod.get("spec") if isinstance(pod, dict) else None
    containers = spec.get("containers") if isinstance(spec, dict) else None
    return [
        item
        for container in (containers if isinstance(containers, list) else [])
        if isinstance(container, dict) and isinstance(container.get("env"), list)
        for item in container["env"]
        if isinstance(item, dict)
    ]


def env_key(etcd_name: str) -> str:
    """The runbook's `sed -E 's/[.-]/_/g'`: how a member name appears in etcd.env variable names."""
    return re.sub(r"[.-]", "_", etcd_name)


def parse_env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        found = ENV_LINE.match(line)
        if found:
            values[found.group(1)] = next(g for g in found.groups()[1:] if g is not None)
    return values


def peer_ip_from_etcd_env(text: str, etcd_name: str) -> str:
    """The host's peer IP: NODE_<key>_IP in etcd-scripts/etcd.env."""
    variable = f"NODE_{env_key(etcd_name)}_IP"
    value = parse_env_file(text).get(variable, "").strip()
    if not value:
        raise ParseError(f"etcd-scripts/etcd.env has no {variable} for member {etcd_name}")
    return checked(value, IP_ADDRESS, what=variable, source=ETCD_ENV)


def etcdctl_image(text: str) -> str:
    """The etcdctl container's image, as the runbook's jq (`select(.name=="etcdctl")|.image`) printed it."""
    image = text.strip()
    if not image or image == "null":
        raise ParseError(f"no etcdctl container image in {' or '.join(ETCD_POD_FILES)}")
    return checked(image, IMAGE, what="the etcdctl image", source=" or ".join(ETCD_POD_FILES))


def restore_uuid(text: str) -> str:
    """The uuid uuidgen printed: used in the initial cluster token and in paths that are removed."""
    return checked(text.strip(), UUID, what="the restore uuid", source="uuidgen")


def snapshot_sum(text: str, path: str) -> str:
    """sha256sum's checksum of the snapshot on a host, or SNAPSHOT_MISSING."""
    value = (text.split() or [""])[0]
    if value == SNAPSHOT_MISSING:
        return value
    return checked(value, SHA256, what="the checksum", source=f"sha256sum {path}")


def read_member(host: str, output: str) -> tuple[Member, str]:
    """The member and the etcdctl image one host's files describe; ParseError says what is missing,
    UntrustedValue what does not look like what it claims to be."""
    found = sections(output)
    if not found.get("pod.yaml"):
        raise ParseError(f"{RESTORE_POD_YAML} is missing or empty")
    if not found.get("etcd.env"):
        raise ParseError(f"{ETCD_ENV} is missing or empty")
    name = etcd_name_from_restore_pod(found["pod.yaml"])
    ip = peer_ip_from_etcd_env(found["etcd.env"], name)
    image = etcdctl_image(found.get("image", ""))
    missing = found.get("missing-tools", "").split()
    if missing:
        raise ParseError(f"missing tools: {', '.join(missing)}")
    if found.get("old-member-data", "").strip():
        raise ParseError(
            f"{OLD_MEMBER_DATA} is not empty (an earlier restore left data there, maybe the only copy): "
            "move it elsewhere, then start again"
        )
    return Member(host=host, name=name, ip=ip), image


def initial_cluster(members: Sequence[Member]) -> str:
    """ETCD_INITIAL_CLUSTER: NAME_0=https://IP_0:2380,... (2380 is the peer port), the same on every host."""
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParseError(
            f"several hosts call themselves {', '.join(duplicates)} in restore-etcd-pod/pod.yaml"
        )
    ips = [m.ip for m in members]
    shared = sorted({ip for ip in ips if ips.count(ip) > 1})
    if shared:
        raise ParseError(f"several hosts have the peer IP {', '.join(shared)} in etcd.env")
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


@dataclass(frozen=True, order=True)
class AddedMember:
    """One `added member` line of `etcdctl snapshot restore`."""

    cluster_id: str
    peer_id: str
    peer_urls: tuple[str, ...]

    def __str__(self) -> str:
        return f"cluster {self.cluster_id}: member {self.peer_id} {','.join(self.peer_urls)}"


def added_members(output: str) -> list[AddedMember]:
    """The `added member` lines, in zap's JSON form (etcd 3.4/3.5) or its console form (as the docs show).

    Their ids and peer URLs are shown to the approvers and compared across hosts, so each must be what it
    claims to be (UntrustedValue otherwise)."""
    found: list[AddedMember] = []
    for line in output.splitlines():
        if "added member" not in line:
            continue
        fields = _json_fields(line)
        try:
            urls = fields["added-peer-peer-urls"]
            found.append(
                AddedMember(
                    _checked_id(fields["cluster-id"], "the cluster id"),
                    _checked_id(fields["added-peer-id"], "the member id"),
                    tuple(
                        checked(str(u), PEER_URL, what="the peer URL", source=ADDED_MEMBER_SOURCE)
                        for u in (urls if isinstance(urls, list) else [urls])
                    ),
                )
            )
        except KeyError as missing:
            raise ParseError(f"an `added member` line lacks {missing}: {line.strip()[:300]}") from None
    return sorted(found)


def _checked_id(value: object, what: str) -> str:
    return checked(str(value), MEMBER_ID, what=what, source=ADDED_MEMBER_SOURCE)


def _json_fields(line: str) -> dict[str, object]:
    text = line.strip()
    for start in (0, text.find("{", text.find("added member"))):
        if start < 0:
            continue
        try:
            fields = json.loads(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(fields, dict):
            return fields
    raise ParseError(f"cannot read an `added member` line: {text[:300]}")


def member_lines_differ(by_host: Mapping[str, Sequence[AddedMember]]) -> bool:
    """True when the hosts' restores did not all add the same members to the same cluster."""
    return len({tuple(lines) for lines in by_host.values()}) > 1


def expected_members(by_host: Mapping[str, Sequence[AddedMember]], members: Sequence[Member]) -> list[str]:
    """What is wrong with the added members compared to ETCD_INITIAL_CLUSTER (empty when nothing is)."""
    wanted = sorted(m.peer_url for m in members)
    problems = []
    for host, lines in by_host.items():
        urls = sorted(url for line in lines for url in line.peer_urls)
        if urls != wanted:
            problems.append(f"{host}: peer URLs {', '.join(urls) or 'none'} instead of {', '.join(wanted)}")
        if len({line.cluster_id for line in lines}) > 1:
            problems.append(f"{host}: more than one cluster id")
    return problems


def endpoint_status_table(text: str) -> list[dict[str, str]]:
    """The rows of `etcdctl endpoint status -w table`, keyed by the header's column names."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.strip().startswith("|")
    ]
    if not rows:
        raise ParseError(f"no table in the endpoint status output: {text.strip()[-300:]}")
    header, body = rows[0], rows[1:]
    return [dict(zip(header, row, strict=False)) for row in body if len(row) == len(header)]


def endpoint_problems(rows: Sequence[Mapping[str, str]], expected: int) -> list[str]:
    """Why the endpoint status is not yet the runbook's healthy picture (step 9), or an empty list."""
    problems = []
    if len(rows) != expected:
        problems.append(f"{len(rows)} endpoints answer, {expected} expected")
    leaders = [r for r in rows if r.get("IS LEADER") == "true"]
    if len(leaders) != 1:
        problems.append(f"{len(leaders)} leaders")
    errors = [f"{r.get('ENDPOINT')}: {r['ERRORS']}" for r in rows if r.get("ERRORS")]
    problems.extend(errors)
    if len({r.get("RAFT TERM") for r in rows}) > 1:
        problems.append("the members are not on the same raft term")
    return problems
