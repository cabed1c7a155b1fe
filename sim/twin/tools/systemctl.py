"""systemctl for a twin host: kubelet and sshd are supervised by the host init; a few other units exist."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import invocations
import runtime

SUPERVISED = {"kubelet": "Kubernetes Kubelet", "sshd": "OpenBSD Secure Shell server"}
ALIASES = {"ssh": "sshd"}
# Present on an OpenShift node; the twin has nothing behind them, so acting on them succeeds quietly.
PASSIVE = {
    "crio": "Container Runtime Interface for OCI (CRI-O)",
    "ovs-vswitchd": "Open vSwitch Forwarding Unit",
    "ovsdb-server": "Open vSwitch Database Unit",
    "chronyd": "NTP client/server",
}


def unit_name(arg: str) -> str:
    name = arg.removesuffix(".service")
    return ALIASES.get(name, name)


def notify() -> None:
    try:
        with open(runtime.HOSTINIT_PID) as handle:
            os.kill(int(handle.read()), signal.SIGUSR1)
    except (OSError, ValueError):
        pass


def request(unit: str, verb: str) -> None:
    units = runtime.read_json(runtime.UNITS, {})
    wanted = units.setdefault("wanted", {})
    if verb in ("start", "restart"):
        wanted[unit] = "active"
    if verb == "stop":
        wanted[unit] = "inactive"
    token = uuid.uuid4().hex
    if verb == "restart":
        units.setdefault("restart", {})[unit] = token
    runtime.write_json(runtime.UNITS, units)
    notify()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = runtime.read_json(runtime.UNIT_STATUS, {})
        running = unit in status.get("pids", {})
        if verb == "restart" and status.get("restarted", {}).get(unit) == token and running:
            return
        if (verb == "start" and running) or (verb == "stop" and not running):
            return
        time.sleep(0.05)
    sys.stderr.write(f"Job for {unit}.service failed because a timeout was exceeded.\n")
    sys.exit(1)


def is_active(unit: str) -> bool:
    if unit in PASSIVE:
        return True
    return unit in runtime.read_json(runtime.UNIT_STATUS, {}).get("pids", {})


def status(unit: str) -> int:
    description = SUPERVISED.get(unit) or PASSIVE[unit]
    active = is_active(unit)
    pid = runtime.read_json(runtime.UNIT_STATUS, {}).get("pids", {}).get(unit)
    print(f"{'●' if active else '○'} {unit}.service - {description}")
    print(f"     Loaded: loaded (/etc/systemd/system/{unit}.service; enabled; preset: disabled)")
    print(f"     Active: {'active (running)' if active else 'inactive (dead)'}")
    if pid:
        print(f"   Main PID: {pid} ({unit})")
    return 0 if active else 3


def main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    if not args:
        sys.stderr.write("systemctl (twin host): use start|stop|restart|status|is-active UNIT...\n")
        return 1
    verb, units = args[0], [unit_name(a) for a in args[1:]]
    if verb == "daemon-reload":
        return 0
    for unit in units:
        if unit not in SUPERVISED and unit not in PASSIVE:
            query = verb in ("status", "is-active")
            message = "could not be found." if query else "not found."
            sys.stderr.write(
                f"{'Unit' if query else f'Failed to {verb} {unit}.service: Unit'} {unit}.service {message}\n"
            )
            return 4 if query else 5
    if verb in ("start", "stop", "restart"):
        if os.geteuid() != 0:
            sys.stderr.write(f"Failed to {verb} {units[0]}.service: Access denied\n")
            return 1
        for unit in units:
            if unit in SUPERVISED:
                request(unit, verb)
        return 0
    if verb == "is-active":
        states = [is_active(u) for u in units]
        print("\n".join("active" if s else "inactive" for s in states))
        return 0 if all(states) else 3
    if verb == "status":
        return max(status(u) for u in units)
    sys.stderr.write(f'Unknown command verb "{verb}".\n')
    return 1


if __name__ == "__main__":
    sys.exit(invocations.logged("systemctl", main))
