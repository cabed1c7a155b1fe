"""Bring a twin up, report on it, and take it down without leaving a process or a mount behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from sim.twin import allocation, hostfs, hostscripts, pki, sshd
from sim.twin.layout import DEFAULT_SSH_PORT, STATE_DIR, HostSpec, TwinError, TwinSpec, load_spec, make_spec
from sim.twin.manifests import ETCD_REVISION

HOSTINIT = Path(__file__).with_name("hostinit.py")
PREREQUISITES = {
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/bin/etcd": "etcd-server",
    "/usr/bin/etcdctl": "etcd-client",
    "/usr/bin/unshare": "util-linux",
    "/usr/bin/jq": "jq",
    "/usr/bin/uuidgen": "uuid-runtime",
    "/usr/bin/sudo": "sudo",
    "/usr/bin/python3": "python3",
}
ETCD_PORTS = (2379, 2380, 9978)
API_PORT = 6443
PLATFORMS = ("installer-provisioned", "user-provisioned")
VERSION = re.compile(r"^4\.(1[2-9])\.\d+$")


API_BLIPS = 0.1
"""Share of API requests that fail transiently while the API is fragile (sim/kubeapi/blips.py)."""
API_RESTART = 2.0
"""Seconds the API refuses connections when the kube-apiserver serving it restarts."""


@dataclass(frozen=True)
class ApiOptions:
    """How the twin's API server behaves: OpenShift z-stream, platform, drill-like timing, and its
    blips (on unless asked for calm: a real cluster is never calm during a restore)."""

    version: str = "4.14.38"
    platform: str = "installer-provisioned"
    realistic: bool = False
    blips: float = API_BLIPS
    restart: float = API_RESTART

    def check(self) -> None:
        if not VERSION.match(self.version):
            raise TwinError(
                f"--version {self.version!r}: use an OpenShift 4.12-4.19 z-stream such as 4.14.38"
            )
        if self.platform not in PLATFORMS:
            raise TwinError(f"--platform {self.platform!r}: use installer-provisioned or user-provisioned")
        if not 0.0 <= self.blips <= 1.0:
            raise TwinError(f"--api-blips {self.blips}: give a share of requests from 0 to 1, e.g. 0.1")
        if self.restart < 0:
            raise TwinError(f"--api-restart {self.restart}: give 0 or more seconds")

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "platform": self.platform,
            "realistic": self.realistic,
            "blips": self.blips,
            "restart": self.restart,
        }


@dataclass(frozen=True)
class HostStatus:
    host: HostSpec
    pid: int | None
    running: bool
    sshd: bool
    etcd: bool


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise TwinError("the twin needs root (mount namespaces, sshd, a 'core' user): run it as root")
    missing = sorted({pkg for path, pkg in PREREQUISITES.items() if not os.access(path, os.X_OK)})
    if missing:
        raise TwinError(
            f"missing programs for the twin; install them with: apt-get install -y {' '.join(missing)}"
        )
    probe = subprocess.run(["/usr/bin/python3", "-c", "import yaml"], capture_output=True, check=False)
    if probe.returncode != 0:
        raise TwinError("the system python3 has no PyYAML; install it with: apt-get install -y python3-yaml")


def read_state(directory: Path) -> dict:
    try:
        return json.loads((directory / "twin.json").read_text())
    except FileNotFoundError:
        return {}


def write_state(spec: TwinSpec, pids: dict[str, int], phase: str, api: dict | None = None) -> None:
    starts = {short: _start_time(pid) for short, pid in pids.items()}
    api = api if api is not None else read_state(spec.dir).get("api", {})
    data = {"spec": spec.to_json(), "pids": pids, "starts": starts, "phase": phase, "api": api}
    tmp = spec.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(spec.state_file)


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running_hosts(state: dict) -> dict[str, int]:
    """Host init pids of the twin that still run (the recorded start time guards against pid reuse)."""
    starts = state.get("starts", {})
    return {
        short: pid
        for short, pid in state.get("pids", {}).items()
        if _alive(pid) and _start_time(pid) == starts.get(short)
    }


def is_live(directory: Path) -> bool:
    return bool(running_hosts(read_state(directory)))


def up(
    directory: Path,
    name: str = "twin",
    hosts: int = 3,
    first_address: str | None = None,
    ssh_port: int = DEFAULT_SSH_PORT,
    timeout: float = 60.0,
    api: ApiOptions | None = None,
    scripts_from: Path | None = None,
) -> tuple[TwinSpec, bool]:
    """Start a twin (hosts, then its API server); returns (spec, started). started is False when it
    was already running. `scripts_from`: a directory with OpenShift's cluster-backup.sh and
    cluster-restore.sh, installed instead of the twin's own (hostscripts.py)."""
    api = api or ApiOptions()
    api.check()
    scripts = hostscripts.load(scripts_from) if scripts_from else hostscripts.own()
    check_prerequisites()
    directory = directory.resolve()
    existing = read_state(directory)
    if existing:
        owner = existing["spec"]["name"]
        if owner != name:
            raise TwinError(
                f"{directory} belongs to twin {owner!r}; use --name {owner} for it, "
                f"or another --dir for twin {name!r}"
            )
        if is_live(directory):
            return TwinSpec.from_json(existing["spec"]), False
    directory.mkdir(parents=True, exist_ok=True)
    chosen = allocation.allocate(name, directory, first_address, is_live)
    spec = None
    try:
        spec = make_spec(name, directory, chosen, hosts, ssh_port)
        allocation.check_free([h.address for h in spec.hosts], (ssh_port, *ETCD_PORTS))
        allocation.check_free([spec.api_vip], (API_PORT,))
        _prepare(spec, api, scripts)
        pids: dict[str, int] = {}
        write_state(spec, pids, "starting", api.to_json())
        for host in spec.hosts:
            pids[host.short] = _start_host(spec, host)
            write_state(spec, pids, "starting")
        _wait_until(
            spec, timeout, "sshd to listen", lambda: all(listening(h.address, ssh_port) for h in spec.hosts)
        )
        _wait_until(spec, timeout, "etcd to have all members healthy", lambda: etcd_healthy(spec))
        # Bootstrap done: roll etcd, one host at a time as the operator's installer does, to a revision
        # whose members join an existing cluster. A member that lost its data can then not rejoin.
        for host in spec.hosts:
            _roll_etcd(spec, host, timeout)
        _start_api(spec, api, timeout)
        write_state(spec, pids, "running")
        return spec, True
    except BaseException:
        if spec is not None and spec.state_file.exists():
            down(directory)
        allocation.release(directory)
        raise


def _roll_etcd(spec: TwinSpec, host: HostSpec, timeout: float) -> None:
    containers = spec.in_host(host, STATE_DIR) / "containers.json"

    def etcd_id() -> str | None:
        try:
            records = json.loads(containers.read_text())["containers"]
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        running = [c["id"] for c in records if c["name"] == "etcd" and c["state"] == "CONTAINER_RUNNING"]
        return running[0] if running else None

    before = etcd_id()
    revision = f"/etc/kubernetes/static-pod-resources/etcd-pod-{ETCD_REVISION}/etcd-pod.yaml"
    shutil.copy(spec.in_host(host, revision), spec.in_host(host, "/etc/kubernetes/manifests/etcd-pod.yaml"))
    _wait_until(
        spec,
        timeout,
        f"etcd on {host.short} to restart on revision {ETCD_REVISION}",
        lambda: etcd_id() not in (None, before) and etcd_healthy(spec),
    )


def _start_api(spec: TwinSpec, api: ApiOptions, timeout: float) -> None:
    """The API server process, supervised like the hosts: its pid and start time go in twin.json."""
    ready = spec.dir / "kubeapi" / "ready"
    ready.unlink(missing_ok=True)
    with open(spec.dir / "kubeapi.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sim.twin.apiserver", "--dir", str(spec.dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
    state = read_state(spec.dir)
    state["api"] = {**api.to_json(), "pid": process.pid, "start": _start_time(process.pid)}
    write_state(spec, state.get("pids", {}), "starting", state["api"])
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise TwinError(
                f"the twin's API server exited with {process.returncode}; see {spec.dir / 'kubeapi.log'}"
            )
        if time.monotonic() > deadline:
            raise TwinError(f"timed out waiting for the twin's API server; see {spec.dir / 'kubeapi.log'}")
        time.sleep(0.1)


def ovn_db_dir(version: str) -> str:
    """Where OVN-Kubernetes keeps a node's databases: per node since interconnect (4.14)."""
    return "/var/lib/ovn-ic/etc" if int(version.split(".")[1]) >= 14 else "/var/lib/ovn/etc"


def api_pid(state: dict) -> int | None:
    api = state.get("api") or {}
    pid = api.get("pid")
    return pid if pid and _alive(pid) and _start_time(pid) == api.get("start") else None


def _stop_api(state: dict, timeout: float) -> bool:
    pid = api_pid(state)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.05)
    return True


def api_ready(spec: TwinSpec) -> bool:
    """True when the API answers /readyz with 200 (it answers 503 while the control plane is down)."""
    ca = spec.dir / "kubeapi" / "ca.crt"
    if not ca.exists():
        return False
    context = ssl.create_default_context(cafile=str(ca))
    token = (spec.dir / "kubeapi" / "token").read_text().strip()
    request = urllib.request.Request(
        f"https://{spec.api_vip}:{API_PORT}/readyz", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _prepare(spec: TwinSpec, api: ApiOptions, scripts: hostscripts.HostScripts) -> None:
    for stale in ("hosts", "pki"):
        shutil.rmtree(spec.dir / stale, ignore_errors=True)
    core = sshd.ensure_core_user()
    hostfs.ensure_mountpoints()
    client_public = sshd.keygen(spec.dir / "id_ed25519", f"drbot-twin-{spec.name}")
    etcd_pki = pki.make_etcd_pki({h.name: h.address for h in spec.hosts})
    pki.write_client_files(spec.pki_dir, etcd_pki)
    known_hosts = []
    for host in spec.hosts:
        host_key = spec.pki_dir / f"ssh_host_ed25519_key.{host.short}"
        public = sshd.keygen(host_key, f"root@{host.name}")
        known_hosts.append(sshd.known_hosts_line(host.address, spec.ssh_port, public))
        hostfs.render_host(spec, host, etcd_pki, client_public, host_key, core, scripts)
        hostfs.write_ovn_databases(spec, host, ovn_db_dir(api.version))
    (spec.dir / "known_hosts").write_text("".join(known_hosts))
    (spec.dir / "clusters.yaml").write_text(clusters_yaml(spec, api))


def clusters_yaml(spec: TwinSpec, api: ApiOptions) -> str:
    cluster = {
        "name": spec.name,
        "language": "en",
        "channel": "C0TWIN",
        "platform": api.platform,
        "network_type": "OVNKubernetes",
        "kubeconfig": str(spec.dir / "kubeconfig"),
        "backup_dir": "/home/core/assets/backup",
        "approvers": ["U0ALICE", "U0BOB"],
        "ssh": {
            "user": "core",
            "key": str(spec.dir / "id_ed25519"),
            "known_hosts": str(spec.dir / "known_hosts"),
            "port": spec.ssh_port,
        },
        "hosts": [{"name": h.name, "address": h.address} for h in spec.hosts],
    }
    return yaml.safe_dump({"clusters": [cluster]}, sort_keys=False, default_flow_style=None)


def _start_host(spec: TwinSpec, host: HostSpec) -> int:
    log = open(spec.host_dir(host) / "hostinit.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/usr/bin/python3",
                "-s",
                str(HOSTINIT),
                "--root",
                str(spec.host_dir(host) / "root"),
                "--node-name",
                host.name,
                *hostfs.host_mount_args(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )
    return process.pid


def listening(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def etcdctl(
    spec: TwinSpec, *args: str, endpoints: list[str] | None = None, timeout: float = 10.0
) -> subprocess.CompletedProcess:
    """The real etcdctl on the machine, with the twin's client certificate."""
    endpoints = endpoints or [f"https://{h.address}:2379" for h in spec.hosts]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ETCDCTL_API": "3"}
    return subprocess.run(
        [
            "etcdctl",
            f"--endpoints={','.join(endpoints)}",
            f"--cacert={spec.pki_dir / 'etcd-ca.crt'}",
            f"--cert={spec.pki_dir / 'etcd-client.crt'}",
            f"--key={spec.pki_dir / 'etcd-client.key'}",
            "--dial-timeout=1s",
            "--command-timeout=2s",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def etcd_healthy(spec: TwinSpec, hosts: list[HostSpec] | None = None) -> bool:
    hosts = hosts or list(spec.hosts)
    result = etcdctl(spec, "endpoint", "health", endpoints=[f"https://{h.address}:2379" for h in hosts])
    return result.returncode == 0


def _wait_until(spec: TwinSpec, timeout: float, what: str, check) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for host in spec.hosts:
            if host.short not in running_hosts(read_state(spec.dir)):
                raise TwinError(
                    f"host {host.short} stopped while waiting for {what}; see {_log_hint(spec, host)}"
                )
        if check():
            return
        time.sleep(0.2)
    raise TwinError(
        f"timed out after {timeout:.0f} s waiting for {what}; see {_log_hint(spec, spec.hosts[0])}"
    )


def _log_hint(spec: TwinSpec, host: HostSpec) -> str:
    state = spec.in_host(host, STATE_DIR)
    logs = [spec.host_dir(host) / "hostinit.log", state / "sshd.log", state / "kubelet.log", state / "logs"]
    return ", ".join(str(p) for p in logs)


def namespace_members(namespace: str) -> list[int]:
    """Pids of the processes in the mount namespace named `namespace` (as /proc/PID/ns/mnt reads)."""
    if namespace == os.readlink("/proc/self/ns/mnt"):
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/mnt") == namespace:
                    found.append(int(entry))
    return found


def namespace_pids(pid: int) -> list[int]:
    """All processes that share `pid`'s mount namespace (the whole host), `pid` included."""
    try:
        return namespace_members(os.readlink(f"/proc/{pid}/ns/mnt"))
    except OSError:
        return []


def down(directory: Path, timeout: float = 8.0) -> list[str]:
    """Stop every host of the twin in `directory`; returns the short names of hosts that were running."""
    directory = directory.resolve()
    state = read_state(directory)
    if not state:
        raise TwinError(f"{directory} holds no twin (no twin.json)")
    spec = TwinSpec.from_json(state["spec"])
    api_stopped = _stop_api(state, timeout)
    running = running_hosts(state)
    for pid in running.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in running.values()):
        time.sleep(0.05)
    # Whatever outlived its host init (or a host init that died) still sits in the host's namespace.
    for host in spec.hosts:
        try:
            namespace = (spec.in_host(host, STATE_DIR) / "mntns").read_text().strip()
        except FileNotFoundError:
            continue
        leftovers = namespace_members(namespace)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while any(_alive(pid) for pid in leftovers):
            time.sleep(0.05)
    write_state(
        spec, {}, "down", {k: v for k, v in state.get("api", {}).items() if k not in ("pid", "start")}
    )
    allocation.release(directory)
    return sorted(running) + (["api"] if api_stopped else [])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def status(directory: Path) -> tuple[TwinSpec, str, list[HostStatus]]:
    spec = load_spec(directory)
    state = read_state(spec.dir)
    rows = []
    alive = running_hosts(state)
    for host in spec.hosts:
        pid = alive.get(host.short)
        running = pid is not None
        rows.append(
            HostStatus(
                host=host,
                pid=pid if running else None,
                running=running,
                sshd=running and listening(host.address, spec.ssh_port),
                etcd=running and etcd_healthy(spec, [host]),
            )
        )
    phase = state.get("phase", "unknown") if any(r.running for r in rows) else "down"
    return spec, phase, rows


def api_status(directory: Path) -> tuple[str, str]:
    """(URL, state): state is 'up', 'down (503: no kube-apiserver or no etcd quorum)' or 'stopped'."""
    spec = load_spec(directory)
    url = f"https://{spec.api_vip}:{API_PORT}"
    if api_pid(read_state(spec.dir)) is None:
        return url, "stopped"
    return url, "up" if api_ready(spec) else "down (no kube-apiserver running or no etcd quorum)"
