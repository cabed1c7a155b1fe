"""The invocation log of a twin host: one JSON line when a host tool starts and one when it ends.

Reliability tests count what really ran on a host from here, not from what drbot says it did: two
executions of one step at once show up as overlapping invocations from two SSH connections.

Each line is {"event": "start"|"end", "tool", "pid", "at" (epoch seconds), ...}; a start also has
`args` and `connection`, the "address:port" of the SSH client whose session ran the tool (read from
SSH_CONNECTION in the nearest ancestor process that has it, since sudo clears the environment), or
null when the tool was not started over SSH (the twin's own processes); an end has `status`, the
exit status or -N when signal N ended the tool. A tool killed with SIGKILL has no end line.

The Python host tools log themselves (`logged`); the shell tools are run through `run`, a small
parent process that logs around the script, passes signals on and ends the way the script ended.

Standard library only: this module runs under the system python3 inside the hosts (as
/opt/drbot-twin/invocations.py) and is read from the machine by tests (`read`, `overlapping`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

LOG = os.path.join(os.environ.get("TWIN_STATE_DIR", "/run/twin-sim"), "invocations.log")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
ARGS_KEPT = 20
"""Arguments kept per invocation: enough to tell the runbook's commands apart, never a whole file."""


def _write(record: dict) -> None:
    # One write() of one line to a file opened with O_APPEND: concurrent tools never interleave lines.
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    try:
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError:
        # Only a host laid out before the log existed lacks it (`up` creates it writable for core);
        # the tool itself must work all the same.
        return
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o666)  # created here under a umask: tools run as core must append too
        os.write(fd, line)
    finally:
        os.close(fd)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _ssh_connection(pid: int) -> str | None:
    """The SSH client ("address:port") of the session `pid` runs in, or None outside SSH."""
    while pid > 1:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                for item in handle.read().split(b"\0"):
                    if item.startswith(b"SSH_CONNECTION="):
                        address, port = item.split(b"=", 1)[1].decode().split()[:2]
                        return f"{address}:{port}"
            pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            return None
    return None


def started(tool: str, args: list[str]) -> None:
    pid = os.getpid()
    _write(
        {
            "event": "start",
            "tool": tool,
            "pid": pid,
            "at": time.time(),
            "args": args[:ARGS_KEPT],
            "connection": _ssh_connection(pid),
        }
    )


def ended(tool: str, status: int) -> None:
    _write({"event": "end", "tool": tool, "pid": os.getpid(), "at": time.time(), "status": status})


def _die_like(status: int) -> int:
    """Return `status`, or end this process with the signal that ended the tool (status -N)."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def logged(tool: str, main: Callable[[], int | None]) -> int:
    """Run a Python host tool's main() between a start and an end line; a forwarded signal ends it
    as the signal would have, after its end line."""
    started(tool, sys.argv[1:])

    def stop(signum: int, frame: object) -> None:
        ended(tool, -signum)
        _die_like(-signum)

    for signum in FORWARDED:
        signal.signal(signum, stop)
    try:
        status = int(main() or 0)
    except SystemExit as leaving:
        code = leaving.code
        ended(tool, code if isinstance(code, int) else (0 if code is None else 1))
        raise  # as it was: a message given to sys.exit() is still printed
    except BaseException:
        ended(tool, 1)
        raise
    status = _flushed(status)
    ended(tool, status)
    return status


def _flushed(status: int) -> int:
    """The status the interpreter will exit with: 120 when it cannot flush what the tool printed (the
    SSH session that read it is gone), as it would at shutdown."""
    try:
        sys.stdout.flush()
    except OSError:
        return 120
    return status


def run(tool: str, argv: list[str]) -> int:
    """Run a shell tool as a child between a start and an end line, passing signals on."""
    started(tool, argv[1:])
    child = subprocess.Popen(argv)
    for signum in FORWARDED:
        signal.signal(signum, lambda signum, frame: child.send_signal(signum))
    status = child.wait()
    ended(tool, status)
    return _die_like(status)


@dataclass(frozen=True)
class Invocation:
    tool: str
    pid: int
    args: tuple[str, ...]
    connection: str | None
    start: float
    end: float | None
    """None while it runs, or when it was killed without an end line."""
    status: int | None


def read(path: str) -> list[Invocation]:
    """Every invocation in a host's log (the machine-side path of LOG), in the order they started."""
    try:
        with open(path) as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
    open_ones: dict[tuple[int, str], dict] = {}
    done: list[Invocation] = []
    for record in records:
        key = (record["pid"], record["tool"])
        if record["event"] == "start":
            if key in open_ones:  # the pid was reused: the earlier one ended without an end line
                done.append(_invocation(open_ones.pop(key), None))
            open_ones[key] = record
        elif key in open_ones:
            done.append(_invocation(open_ones.pop(key), record))
    done += [_invocation(start, None) for start in open_ones.values()]
    return sorted(done, key=lambda invocation: invocation.start)


def _invocation(start: dict, end: dict | None) -> Invocation:
    return Invocation(
        tool=start["tool"],
        pid=start["pid"],
        args=tuple(start["args"]),
        connection=start["connection"],
        start=start["at"],
        end=end["at"] if end else None,
        status=end["status"] if end else None,
    )


def overlapping(invocations: list[Invocation], until: float) -> list[tuple[Invocation, Invocation]]:
    """Pairs of invocations from two different SSH connections that ran at the same time; one without
    an end counts as running until `until`, since when it stopped is not known."""
    remote = sorted((i for i in invocations if i.connection), key=lambda i: i.start)
    pairs = []
    for index, first in enumerate(remote):
        first_end = first.end if first.end is not None else until
        for second in remote[index + 1 :]:
            if second.start > first_end:
                break
            if second.connection != first.connection:
                pairs.append((first, second))
    return pairs


if __name__ == "__main__":
    # invocations.py run TOOL PROGRAM [ARGS...]: how the shell tools' shims in /usr/local/bin start them.
    if len(sys.argv) < 4 or sys.argv[1] != "run":
        sys.stderr.write("usage: invocations.py run TOOL PROGRAM [ARGS...]\n")
        sys.exit(2)
    sys.exit(run(sys.argv[2], sys.argv[3:]))
