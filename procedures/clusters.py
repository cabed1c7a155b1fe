"""The clusters file: how drbot reaches each cluster (real or twin) and who may act on it.

The same YAML describes a production cluster and a twin; `drbot twin up` writes one. Unknown keys are
refused, so a typo (`aprovers:`) cannot silently leave a cluster without approvers.

Who may do what: approvers and operators may start procedures, and see the cluster in `/dr status`,
`/dr timeline` and plans; only approvers may approve. Procedures start only from the cluster's
`channels` (default: its `channel`).

    clusters:
      - name: prod-east
        language: en                    # en or zh-CN: the language drbot speaks in this cluster's channel
        channel: C0123INCIDENT          # the incident channel
        platform: installer-provisioned # or user-provisioned
        network_type: OVNKubernetes
        kubeconfig: /etc/drbot/kubeconfigs/prod-east
        backup_dir: /home/core/assets/backup
        approvers: [U01ALICE, U02BOB]
        approver_group: S0SRE           # optional Slack user group whose members may approve
        operators: [U03CAROL, S0ONCALL] # users/user groups who may start procedures (approvers may too)
        channels: [C0123INCIDENT, "inc-*"]  # where procedures start: channel ids, or name prefixes with *
        backup_prefixes: [/var/backups/etcd]  # where dir= and backup= may point, besides backup_dir
        ssh: {user: core, key: /etc/drbot/ssh/id_ed25519, known_hosts: /etc/drbot/ssh/known_hosts, port: 22}
        hosts:
          - {name: master-0, address: 10.0.0.10}
          - {name: master-1, address: 10.0.0.11, port: 2222}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PLATFORMS = ("installer-provisioned", "user-provisioned")
LANGUAGES = ("en", "zh-CN")
CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SLACK_USER_OR_GROUP = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
CHANNEL_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]*\*$")
ABSOLUTE_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+/?$")
CLUSTER_KEYS = frozenset(
    {
        "name",
        "language",
        "channel",
        "channels",
        "platform",
        "network_type",
        "kubeconfig",
        "backup_dir",
        "backup_prefixes",
        "approvers",
        "approver_group",
        "operators",
        "ssh",
        "hosts",
    }
)


class ConfigError(ValueError):
    """The clusters file is missing, unreadable or wrong; the message says where and how to fix it."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int
    user: str
    key: str
    known_hosts: str


@dataclass(frozen=True)
class Cluster:
    name: str
    hosts: tuple[Host, ...]
    channel: str = ""
    language: str = "en"
    platform: str = "installer-provisioned"
    network_type: str = "OVNKubernetes"
    kubeconfig: str = ""
    backup_dir: str = "/home/core/assets/backup"
    approvers: tuple[str, ...] = ()
    approver_group: str = ""
    operators: tuple[str, ...] = ()
    """Slack users (U…, W…) and user groups (S…) who may start procedures."""
    channels: tuple[str, ...] = ()
    """Channel ids, and name prefixes ending in `*`, where procedures may start."""
    backup_prefixes: tuple[str, ...] = ()

    def allows_channel(self, channel_id: str, channel_name: str) -> bool:
        for allowed in self.channels:
            if allowed.endswith("*") and channel_name.startswith(allowed[:-1]):
                return True
            if allowed == channel_id:
                return True
        return False

    @property
    def backup_roots(self) -> tuple[str, ...]:
        """Where `dir=` and `backup=` may point: the backup directory and the allowed prefixes."""
        return (self.backup_dir, *self.backup_prefixes)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise ConfigError(f"cluster {self.name!r} has no control-plane host {name!r}; its hosts are: {known}")


@dataclass(frozen=True)
class Clusters:
    by_name: dict[str, Cluster] = field(default_factory=dict)
    source: str = ""

    def get(self, name: str) -> Cluster:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise ConfigError(f"unknown cluster {name!r}; clusters in {self.source}: {known}") from None

    def names(self) -> list[str]:
        return sorted(self.by_name)


def load_clusters(path: str | Path) -> Clusters:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"clusters file {path} does not exist; set DRBOT_CONFIG to the clusters file"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"clusters file {path} is not valid YAML: {error}") from None
    return parse_clusters(document, source=str(path))


def parse_clusters(document: Any, source: str = "<clusters>") -> Clusters:
    if not isinstance(document, dict) or not isinstance(document.get("clusters"), list):
        raise ConfigError(f"{source}: expected a mapping with a list under 'clusters:'")
    by_name: dict[str, Cluster] = {}
    for index, entry in enumerate(document["clusters"]):
        cluster = _parse_cluster(entry, f"{source}: clusters[{index}]")
        if cluster.name in by_name:
            raise ConfigError(f"{source}: cluster {cluster.name!r} is listed twice")
        by_name[cluster.name] = cluster
    return Clusters(by_name=by_name, source=source)


def _parse_cluster(entry: Any, where: str) -> Cluster:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    name = str(entry.get("name", ""))
    if not CLUSTER_NAME.match(name):
        raise ConfigError(f"{where}: name {name!r} must be lowercase letters, digits and '-'")
    where = f"{where} ({name})"
    _check_keys(entry, where)
    ssh = entry.get("ssh") or {}
    if not isinstance(ssh, dict):
        raise ConfigError(f"{where}: 'ssh' must be a mapping of user, key, known_hosts, port")
    raw_hosts = entry.get("hosts")
    if not isinstance(raw_hosts, list) or not raw_hosts:
        raise ConfigError(f"{where}: 'hosts' must list the control-plane hosts (name and address)")
    hosts = tuple(_parse_host(raw, ssh, f"{where}: hosts[{i}]") for i, raw in enumerate(raw_hosts))
    if len({h.name for h in hosts}) != len(hosts):
        raise ConfigError(f"{where}: host names must be unique")
    platform = entry.get("platform", "installer-provisioned")
    if platform not in PLATFORMS:
        raise ConfigError(f"{where}: platform {platform!r} must be one of {', '.join(PLATFORMS)}")
    language = entry.get("language", "en")
    if language not in LANGUAGES:
        raise ConfigError(f"{where}: language {language!r} must be one of {', '.join(LANGUAGES)}")
    channel = str(entry.get("channel", ""))
    operators = _strings(entry, "operators", where)
    for operator in operators:
        if not SLACK_USER_OR_GROUP.match(operator):
            raise ConfigError(
                f"{where}: operators entry {operator!r} must be a Slack user id (U…) or user group id (S…)"
            )
    channels = _strings(entry, "channels", where) or ((channel,) if channel else ())
    for allowed in channels:
        if not (CHANNEL_ID.match(allowed) or CHANNEL_PREFIX.match(allowed)):
            raise ConfigError(
                f"{where}: channels entry {allowed!r} must be a channel id (C0123ABC) or a channel name "
                "prefix ending in * (inc-*)"
            )
    return Cluster(
        name=name,
        hosts=hosts,
        channel=channel,
        language=language,
        platform=platform,
        network_type=str(entry.get("network_type", "OVNKubernetes")),
        kubeconfig=str(entry.get("kubeconfig", "")),
        backup_dir=_path(str(entry.get("backup_dir", "/home/core/assets/backup")), f"{where}: backup_dir"),
        approvers=_strings(entry, "approvers", where),
        approver_group=str(entry.get("approver_group", "")),
        operators=operators,
        channels=channels,
        backup_prefixes=tuple(
            _path(prefix, f"{where}: backup_prefixes") for prefix in _strings(entry, "backup_prefixes", where)
        ),
    )


def _check_keys(entry: dict[str, Any], where: str) -> None:
    unknown = sorted(set(entry) - CLUSTER_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a cluster may have: "
            f"{', '.join(sorted(CLUSTER_KEYS))}"
        )


def _strings(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    raw = entry.get(key) or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: '{key}' must be a list")
    return tuple(str(item) for item in raw)


def _path(value: str, where: str) -> str:
    if not ABSOLUTE_PATH.match(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
        raise ConfigError(f"{where}: {value!r} must be an absolute path of letters, digits, '.', '_' and '-'")
    return value.rstrip("/") or "/"


def _parse_host(raw: Any, ssh: dict[str, Any], where: str) -> Host:
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("address"):
        raise ConfigError(f"{where}: each host needs 'name' and 'address'")
    merged = {**ssh, **raw}
    missing = [k for k in ("key", "known_hosts") if not merged.get(k)]
    if missing:
        raise ConfigError(f"{where}: no SSH {' and '.join(missing)} (set them under 'ssh:' or on the host)")
    try:
        port = int(merged.get("port", 22))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: port {merged.get('port')!r} is not a number") from None
    return Host(
        name=str(raw["name"]),
        address=str(raw["address"]),
        port=port,
        user=str(merged.get("user", "core")),
        key=str(merged["key"]),
        known_hosts=str(merged["known_hosts"]),
    )
