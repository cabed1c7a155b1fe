"""Throwaway OpenSSH servers for tests and benchmarks.

    with running_sshd("127.0.0.60") as server:
        host = server.host("master-0")       # a procedures.clusters.Host that logs in with key auth
        ...

Each server is a real /usr/sbin/sshd on its own loopback address and a free port, with a generated
host key, a generated ed25519 client key, an authorized_keys file in its own directory and a
known_hosts file holding its host key. It logs in as a local test user (created on first use with
passwordless sudo), not root, whose shell start-up is slow here. Everything is removed on exit:
sshd and its session processes are killed by pid and waited for, and the directory is deleted.
Needs root (sshd, useradd).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from procedures.clusters import Host

SSHD = "/usr/sbin/sshd"
TEST_USER = "drbot-test"
"""Has passwordless sudo."""
PASSWORD_SUDO_USER = "drbot-test-pw"
"""May use sudo only with a password (it has none), so `sudo -n` refuses."""


def ensure_user(name: str = TEST_USER, *, passwordless_sudo: bool = True) -> None:
    """Create the local login user `name` if missing, and its sudoers rule."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        # useradd leaves the account locked ("!"), and sshd without PAM refuses locked accounts;
        # "*" means no usable password but not locked.
        subprocess.run(["usermod", "-p", "*", name], check=True)
    rule = f"{name} ALL=(ALL) NOPASSWD: ALL\n" if passwordless_sudo else f"{name} ALL=(ALL) ALL\n"
    sudoers = Path("/etc/sudoers.d") / name
    if not sudoers.exists() or sudoers.read_text() != rule:
        staged = sudoers.with_name(f".{name}.new")
        staged.write_text(rule)
        staged.chmod(0o440)
        subprocess.run(["visudo", "-cqf", str(staged)], check=True)
        staged.replace(sudoers)


def generate_key(path: Path, comment: str = "drbot-test") -> Path:
    """An unencrypted ed25519 key pair at `path` and `path`.pub."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Sshd:
    address: str
    port: int
    user: str
    directory: Path
    client_key: Path
    host_key: Path
    known_hosts: Path
    pid: int

    def host(self, name: str = "", **changes: object) -> Host:
        """A Host that reaches this server; keyword arguments override fields (user, key, ...)."""
        host = Host(
            name=name or self.address,
            address=self.address,
            port=self.port,
            user=self.user,
            key=str(self.client_key),
            known_hosts=str(self.known_hosts),
        )
        return replace(host, **changes)  # type: ignore[arg-type]

    def known_hosts_line(self) -> str:
        public = Path(f"{self.host_key}.pub").read_text().split()
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {public[0]} {public[1]}\n"

    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")


def _sshd_config(directory: Path, address: str, port: int, host_key: Path) -> str:
    return f"""\
ListenAddress {address}:{port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {directory}/authorized_keys
# The directory lives under /tmp (world-writable), which StrictModes would reject.
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
MaxStartups 100:30:200
MaxSessions 50
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
LogLevel VERBOSE
"""


@contextlib.contextmanager
def running_sshd(
    address: str,
    *,
    user: str = TEST_USER,
    client_key: Path | None = None,
    port: int | None = None,
    startup_timeout: float = 10.0,
) -> Iterator[Sshd]:
    """Start sshd on `address` (a 127.0.0.x address) and stop it on exit, even after a failure.

    `client_key` lets several servers accept the same key, like the hosts of one cluster.
    `port` defaults to a free one.
    """
    ensure_user(user)
    ensure_user(PASSWORD_SUDO_USER, passwordless_sudo=False)
    directory = Path(tempfile.mkdtemp(prefix=f"drbot-sshd-{address}-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        # Session processes run as the login user and must read authorized_keys.
        directory.chmod(0o755)
        host_key = generate_key(directory / "ssh_host_ed25519_key", comment=f"host {address}")
        if client_key is None:
            client_key = generate_key(directory / "id_ed25519")
        authorized = directory / "authorized_keys"
        authorized.write_text(Path(f"{client_key}.pub").read_text())
        authorized.chmod(0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        port = port or free_port(address)
        config = directory / "sshd_config"
        config.write_text(_sshd_config(directory, address, port, host_key))
        log_path = directory / "sshd.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        _wait_listening(process, log_path, startup_timeout)
        server = Sshd(
            address=address,
            port=port,
            user=user,
            directory=directory,
            client_key=client_key,
            host_key=host_key,
            known_hosts=directory / "known_hosts",
            pid=process.pid,
        )
        server.known_hosts.write_text(server.known_hosts_line())
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_sshds(addresses: Sequence[str], *, user: str = TEST_USER) -> Iterator[list[Sshd]]:
    """One sshd per address, all accepting one client key (like the control plane of a cluster)."""
    with contextlib.ExitStack() as stack:
        key_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drbot-sshkey-")))
        key = generate_key(key_dir / "id_ed25519")
        yield [stack.enter_context(running_sshd(a, user=user, client_key=key)) for a in addresses]


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Server listening on" in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"sshd did not start (exit {process.poll()}):\n{log_path.read_text(errors='replace')}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may contain spaces or parentheses; fields follow the last ')'.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _descendants(pid: int) -> list[int]:
    result = []
    pending = [pid]
    while pending:
        for child in _children(pending.pop()):
            result.append(child)
            pending.append(child)
    return result


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Each connection's sshd calls setsid(), so killing the listener's group would miss them:
    # collect the whole tree by parent pid first.
    sessions = _descendants(process.pid)
    for pid in [process.pid, *sessions]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    deadline = time.monotonic() + 5
    for pid in sessions:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
