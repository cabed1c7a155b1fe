"""SSH side of the twin: the `core` user, host and client keys, known_hosts and each host's sshd_config."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from sim.twin.layout import TwinError

SUDOERS = Path("/etc/sudoers.d/drbot-twin-core")


def ensure_core_user() -> tuple[int, int]:
    """Create `core` machine-wide when missing: key-only login, passwordless sudo. Returns (uid, gid)."""
    try:
        entry = pwd.getpwnam("core")
    except KeyError:
        _run(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                "/home/core",
                "--shell",
                "/bin/bash",
                "--user-group",
                "core",
            ]
        )
        entry = pwd.getpwnam("core")
    # A locked account ('!') cannot log in even with a key when sshd runs without PAM;
    # '*' takes no password either.
    _run(["usermod", "-p", "*", "core"])
    Path("/home/core").mkdir(exist_ok=True)
    if not SUDOERS.exists():
        SUDOERS.write_text(
            "# drbot twin: OpenShift's core user may use sudo without a password\n"
            "core ALL=(ALL) NOPASSWD: ALL\n"
        )
        SUDOERS.chmod(0o440)
    return entry.pw_uid, entry.pw_gid


def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at `path`; returns the public key line."""
    if not path.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return Path(f"{path}.pub").read_text().strip()


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    host = address if port == 22 else f"[{address}]:{port}"
    key_type, key = public_key.split()[:2]
    return f"{host} {key_type} {key}\n"


def sshd_config(address: str, port: int) -> str:
    return f"""# twin host sshd: key-only login for core, fast logins
ListenAddress {address}:{port}
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile none
UsePAM no
UseDNS no
PermitRootLogin no
AllowUsers core
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
MaxStartups 100:30:200
MaxSessions 50
LoginGraceTime 30
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def install_authorized_key(home: Path, public_key: str, uid: int, gid: int) -> None:
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key + "\n")
    for path, mode in ((home, 0o700), (ssh_dir, 0o700), (keys, 0o600)):
        os.chown(path, uid, gid)
        path.chmod(mode)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TwinError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
