"""Names, addresses and paths of a twin: pure data, shared by every other twin module.

A twin with block k puts its hosts on 127.0.0.(10k+1) ... 127.0.0.(10k+n); keepalived's
simulated API VIP is 127.0.0.(10k) and the ingress VIP 127.0.0.(10k+9).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_HOSTS = 8
MAX_BLOCK = 24
DEFAULT_SSH_PORT = 2222
TWIN_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

# Paths inside a host that are its own: host path -> directory name under DIR/hosts/<host>/root.
# /tmp is mounted last because DIR itself may live under /tmp.
HOST_MOUNTS: tuple[tuple[str, str], ...] = (
    ("/etc/kubernetes", "etc-kubernetes"),
    ("/etc/ssh", "etc-ssh"),
    ("/var/lib", "var-lib"),
    ("/home/core", "home-core"),
    ("/root", "root"),
    ("/usr/local/bin", "usr-local-bin"),
    ("/run", "run"),
    ("/tmp", "tmp"),
)

# The twin's in-host programs (this package's hostinit, kubelet, runtime and tools), bind-mounted here
# in every host before the host's own /tmp, /root, … are mounted: a checkout anywhere on the machine,
# even under /tmp, stays reachable from inside the hosts.
CODE_DIR = "/opt/drbot-twin"

# Where the host tools and the kubelet simulator keep their state, seen from inside the host.
STATE_DIR = "/run/twin-sim"
INVOCATION_LOG = f"{STATE_DIR}/invocations.log"
"""Each host tool's start and end (invocations.py), seen from inside the host."""
SCRIPTS_DIR = f"{STATE_DIR}/bin"
"""The shell tools' scripts; /usr/local/bin holds the shims that run them through invocations.py."""
ETCD_CERTS = "/etc/kubernetes/static-pod-resources/etcd-certs"
ETCD_SCRIPTS = f"{ETCD_CERTS}/configmaps/etcd-scripts"
RESTORE_POD = f"{ETCD_CERTS}/configmaps/restore-etcd-pod/pod.yaml"
ETCD_IMAGE = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "9d28c15860870e85c91d0e36b45f7a6e" * 2
KUBE_IMAGE = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "f79db5a8799fd2c08960ad9ee22f784b" * 2
KEEPALIVED_IMAGE = (
    "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "36f86e2eeaaffe662df0d21041eb22b8" * 2
)


def env_key(node_name: str) -> str:
    """OpenShift's etcd.env spells a node name with '-' and '.' turned into '_'."""
    return re.sub(r"[.-]", "_", node_name)


@dataclass(frozen=True)
class HostSpec:
    index: int
    name: str
    address: str

    @property
    def short(self) -> str:
        return f"master-{self.index}"

    @property
    def key(self) -> str:
        return env_key(self.name)


@dataclass(frozen=True)
class TwinSpec:
    name: str
    dir: Path
    first_address: str
    ssh_port: int
    hosts: tuple[HostSpec, ...]
    api_vip: str
    ingress_vip: str

    def host(self, ref: str) -> HostSpec:
        for host in self.hosts:
            if ref in (host.name, host.short, host.address):
                return host
        known = ", ".join(f"{h.short} ({h.name}, {h.address})" for h in self.hosts)
        raise TwinError(f"twin {self.name!r} has no host {ref!r}; its hosts are: {known}")

    def host_dir(self, host: HostSpec) -> Path:
        return self.dir / "hosts" / host.short

    def host_root(self, host: HostSpec, mount_dir: str) -> Path:
        return self.host_dir(host) / "root" / mount_dir

    def in_host(self, host: HostSpec, path: str) -> Path:
        """The machine-side path of `path` as the host sees it (only for paths under HOST_MOUNTS)."""
        for target, mount_dir in HOST_MOUNTS:
            if path == target or path.startswith(target + "/"):
                return self.host_root(host, mount_dir) / path[len(target) :].lstrip("/")
        raise ValueError(f"{path} is not one of the host's own paths")

    @property
    def pki_dir(self) -> Path:
        return self.dir / "pki"

    @property
    def state_file(self) -> Path:
        return self.dir / "twin.json"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["dir"] = str(self.dir)
        return data

    @classmethod
    def from_json(cls, data: dict) -> TwinSpec:
        return cls(
            name=data["name"],
            dir=Path(data["dir"]),
            first_address=data["first_address"],
            ssh_port=int(data["ssh_port"]),
            hosts=tuple(HostSpec(**h) for h in data["hosts"]),
            api_vip=data["api_vip"],
            ingress_vip=data["ingress_vip"],
        )


class TwinError(Exception):
    """Bad input or a failed twin operation; the message says what is wrong and how to fix it."""


def make_spec(name: str, directory: Path, first_address: str, hosts: int, ssh_port: int) -> TwinSpec:
    if not TWIN_NAME.match(name):
        raise TwinError(f"twin name {name!r} must be lowercase letters, digits and '-' (at most 32)")
    if not 1 <= hosts <= MAX_HOSTS:
        raise TwinError(f"--hosts {hosts}: a twin has 1 to {MAX_HOSTS} control-plane hosts")
    try:
        first = ipaddress.IPv4Address(first_address)
    except ValueError:
        raise TwinError(f"--first-address {first_address!r} is not an IPv4 address") from None
    last = int(first) & 0xFF
    if not first.is_loopback or last % 10 != 1 or last > 10 * MAX_BLOCK + 1:
        raise TwinError(
            f"--first-address {first_address}: use a loopback address ending in 1, "
            f"from 127.0.0.11 to 127.0.0.{10 * MAX_BLOCK + 1} (e.g. 127.0.0.21)"
        )
    if not 1 <= ssh_port <= 65535:
        raise TwinError(f"--ssh-port {ssh_port} is not a TCP port")
    base = int(first) - 1
    specs = tuple(
        HostSpec(
            index=i, name=f"master-{i}.{name}.example.com", address=str(ipaddress.IPv4Address(base + 1 + i))
        )
        for i in range(hosts)
    )
    return TwinSpec(
        name=name,
        dir=directory.resolve(),
        first_address=first_address,
        ssh_port=ssh_port,
        hosts=specs,
        api_vip=str(ipaddress.IPv4Address(base)),
        ingress_vip=str(ipaddress.IPv4Address(base + 9)),
    )


def block_address(block: int) -> str:
    return f"127.0.0.{10 * block + 1}"


def load_spec(directory: Path) -> TwinSpec:
    state = directory.resolve() / "twin.json"
    try:
        data = json.loads(state.read_text())
    except FileNotFoundError:
        raise TwinError(
            f"{directory} holds no twin (no twin.json); start one with: drbot twin up --dir {directory}"
        ) from None
    return TwinSpec.from_json(data["spec"])
