"""Host init: the first process of a twin host, started by `unshare --mount --propagation private`.

It bind-mounts the host's own directories, then supervises sshd and the kubelet simulator like
systemd would: units.json says which units should be active; SIGUSR1 makes it re-read that file and
act on restart requests. SIGTERM powers the host off: every process in its mount namespace ends.
Standard library only (system python3): the project's venv lives under /root, which is mounted over.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import stat
import subprocess
import sys
import time

try:
    from sim.twin import runtime
except ImportError:  # run as a script by the system python inside a host
    import runtime  # type: ignore[no-redef]

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
PR_SET_CHILD_SUBREAPER = 36
# Powering off is abrupt: containers get half a second, not their termination grace period.
POWER_OFF_GRACE = 0.5
HERE = os.path.dirname(os.path.abspath(__file__))


def units(code_dir: str) -> dict[str, list[str]]:
    """The host's services and their command lines (the kubelet simulator runs from `code_dir`)."""
    return {
        "sshd": ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"],
        "kubelet": ["/usr/bin/python3", "-s", f"{code_dir}/kubelet.py"],
    }


_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int, options: str | None = None) -> None:
    encoded = [None if v is None else v.encode() for v in (fstype, options)]
    if _libc.mount(source.encode(), target.encode(), encoded[0], flags, encoded[1]) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} {target} ({fstype or 'bind'}): {os.strerror(errno)}")


def bind(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)


def hide_image_tools() -> None:
    """As on RHCOS, etcdctl is no program of the host: only the etcd image has it, and the backup and
    restore scripts copy it out with podman (dl_etcdctl). The machine's /usr/bin stays reachable,
    read-only, as the etcd image's (runtime.IMAGE_BIN); an overlay with a whiteout per image-only tool
    makes /usr/bin the host's own view, read-only too, so no host can change the machine's programs."""
    os.makedirs(runtime.IMAGE_BIN, exist_ok=True)
    bind("/usr/bin", runtime.IMAGE_BIN)
    mount("none", runtime.IMAGE_BIN, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    whiteouts = os.path.join(runtime.STATE_DIR, "usr-bin-whiteouts")
    os.makedirs(whiteouts, exist_ok=True)
    for tool in runtime.IMAGE_ONLY_TOOLS:
        with contextlib.suppress(FileExistsError):
            # overlayfs reads a 0/0 character device in a layer as "this name does not exist".
            os.mknod(os.path.join(whiteouts, tool), stat.S_IFCHR, os.makedev(0, 0))
    mount("overlay", "/usr/bin", "overlay", MS_RDONLY, f"lowerdir={whiteouts}:/usr/bin")


def same_namespace_pids() -> list[int]:
    """Every other process in this host's mount namespace (sessions, sudo, containers, ...)."""
    mine = os.readlink("/proc/self/ns/mnt")
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/mnt") == mine:
                    pids.append(int(entry))
    return pids


class HostInit:
    def __init__(self, node_name: str, code_dir: str) -> None:
        self.node_name = node_name
        self.units = units(code_dir)
        self.pids: dict[str, int] = {}
        self.status: dict = {"pids": {}, "restarted": {}, "powered_off": False}
        self.wake = False
        self.stopping = False

    def start(self, unit: str) -> None:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TWIN_NODE_NAME": self.node_name,
        }
        with open(os.path.join(runtime.STATE_DIR, f"{unit}.log"), "ab") as out:
            process = subprocess.Popen(
                self.units[unit],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
            )
        self.pids[unit] = process.pid
        self.publish()

    def stop(self, unit: str) -> None:
        pid = self.pids.pop(unit, None)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while runtime.alive(pid) and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.publish()

    def publish(self) -> None:
        self.status["pids"] = dict(self.pids)
        # If the twin's directory was deleted under a running host, the host must still be able to stop.
        with contextlib.suppress(OSError):
            runtime.write_json(runtime.UNIT_STATUS, self.status)

    def reap(self) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for unit, unit_pid in list(self.pids.items()):
                if unit_pid == pid:
                    del self.pids[unit]

    def power_off_containers(self) -> None:
        """What a powered-off host leaves: no container runs any more."""
        with runtime.locked_state() as state:
            for record in state["containers"]:
                if record["state"] == runtime.RUNNING:
                    if record.get("pid"):
                        runtime.stop_process_group(record["pid"], POWER_OFF_GRACE)
                    runtime.mark_exited(record, 137)
            state["pods"] = {}

    def reconcile(self) -> None:
        units = runtime.read_json(runtime.UNITS, {})
        wanted = units.get("wanted", {})
        for unit in self.units:
            token = units.get("restart", {}).get(unit)
            if token and token != self.status["restarted"].get(unit):
                self.stop(unit)
                self.status["restarted"][unit] = token
            if wanted.get(unit, "active") == "active":
                if unit not in self.pids:
                    self.start(unit)
            elif unit in self.pids:
                self.stop(unit)
        powered_off = units.get("power") == "off"
        if powered_off and not self.status["powered_off"]:
            self.power_off_containers()
            for pid in same_namespace_pids():
                if pid not in self.pids.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self.status["powered_off"] = powered_off
        self.publish()

    def shutdown(self) -> None:
        for unit in ("sshd", "kubelet"):
            self.stop(unit)
        with contextlib.suppress(OSError):
            self.power_off_containers()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in same_namespace_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 2
            while same_namespace_pids() and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.05)
        self.reap()

    def run(self) -> int:
        def on_signal(signum: int, _frame: object) -> None:
            if signum == signal.SIGTERM:
                self.stopping = True
            self.wake = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGUSR1, on_signal)
        signal.signal(signal.SIGCHLD, on_signal)
        try:
            while not self.stopping:
                self.reap()
                try:
                    self.reconcile()
                except OSError as error:
                    print(f"host init: reconcile failed: {error}", flush=True)
                for _ in range(20):
                    if self.wake or self.stopping:
                        break
                    time.sleep(0.05)
                self.wake = False
        finally:
            # Whatever went wrong above, the host's processes must not outlive it.
            self.shutdown()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--root", required=True, help="DIR/hosts/<host>/root, whose subdirectories become the host's own"
    )
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--mount", action="append", default=[], metavar="TARGET=SUBDIR")
    parser.add_argument("--code-dir", required=True, help="where this package is seen from inside the host")
    args = parser.parse_args(argv)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # Before the host's own directories hide the checkout (it may live under /tmp or /root).
    bind(HERE, args.code_dir)
    for item in args.mount:
        target, subdir = item.split("=", 1)
        bind(os.path.join(args.root, subdir), target)
    os.makedirs(runtime.STATE_DIR, exist_ok=True)
    hide_image_tools()
    with open(runtime.HOSTINIT_PID, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    # `down` finds every process of this host by its mount namespace, even if this process is gone.
    with open(runtime.MOUNT_NAMESPACE, "w") as handle:
        handle.write(os.readlink("/proc/self/ns/mnt") + "\n")
    os.chdir("/")
    print(f"host init {os.getpid()} for {args.node_name} ready", flush=True)
    return HostInit(args.node_name, args.code_dir).run()


if __name__ == "__main__":
    sys.exit(main())
