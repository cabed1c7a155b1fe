"""The container runtime state a twin host shares between its kubelet simulator, host init and host tools.

Standard library only: this module runs under the system python3 inside the host's mount namespace,
where the project's venv (under /root) is not visible.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator

STATE_DIR = os.environ.get("TWIN_STATE_DIR", "/run/twin-sim")
CONTAINERS = os.path.join(STATE_DIR, "containers.json")
LOCK = os.path.join(STATE_DIR, "containers.lock")
LOG_DIR = os.path.join(STATE_DIR, "logs")
UNITS = os.path.join(STATE_DIR, "units.json")  # what systemctl and faults ask for
UNIT_STATUS = os.path.join(STATE_DIR, "unit-status.json")  # what host init did: pids, handled requests
HOSTINIT_PID = os.path.join(STATE_DIR, "hostinit.pid")
MOUNT_NAMESPACE = os.path.join(STATE_DIR, "mntns")
IP_STATE = os.path.join(STATE_DIR, "ip.json")
PODMAN_DIR = os.path.join(STATE_DIR, "podman")
# RHCOS has no etcdctl on the host: the backup and restore scripts copy it out of the etcd image
# (dl_etcdctl). Host init hides these programs of the machine's /usr/bin from the host and keeps that
# /usr/bin, read-only, here as the etcd image's: containers and `podman create` find them in it.
IMAGE_ONLY_TOOLS = ("etcdctl", "etcdutl")
IMAGE_BIN = os.path.join(STATE_DIR, "etcd-image", "usr", "bin")
RUNNING = "CONTAINER_RUNNING"
EXITED = "CONTAINER_EXITED"


def empty_state() -> dict:
    return {"pods": {}, "containers": []}


@contextlib.contextmanager
def locked_state() -> Iterator[dict]:
    """Load containers.json under an exclusive lock; whatever the caller changes is written back."""
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state()
        before = json.dumps(state, sort_keys=True)
        yield state
        if json.dumps(state, sort_keys=True) != before:
            write_json(CONTAINERS, state)


def read_state() -> dict:
    try:
        with open(CONTAINERS) as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return empty_state()


def write_json(path: str, data: object) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)


def read_json(path: str, default: object) -> object:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def alive(pid: int | None) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as dead)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop_process_group(pid: int, grace: float) -> None:
    """SIGTERM the container's process group, then SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def find(state: dict, ref: str) -> dict | None:
    """A container by full id or unique prefix, as crictl accepts."""
    matches = [c for c in state["containers"] if c["id"].startswith(ref)]
    running = [c for c in matches if c["state"] == RUNNING]
    if len(matches) == 1:
        return matches[0]
    if len(running) == 1:
        return running[0]
    return None


def mark_exited(container: dict, exit_code: int) -> None:
    container["state"] = EXITED
    container["exit_code"] = exit_code
    container["finished"] = time.time()
    container["pid"] = None
