"""crictl for a twin host: ps, stop, exec, logs, inspect, pods, over the kubelet simulator's containers."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import invocations
import runtime

COLUMNS = ("CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID")
STATES = {"running": runtime.RUNNING, "exited": runtime.EXITED}


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which crictl prints followed by ' ago'."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def table(rows: list[tuple[str, ...]]) -> str:
    """Go's tabwriter as crictl configures it: minwidth 20, padding 3, space-filled."""
    widths = [max(20, *(len(r[i]) + 3 for r in rows)) for i in range(len(rows[0]))]
    return (
        "\n".join("".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + r[-1] for r in rows)
        + "\n"
    )


def require_root() -> None:
    if os.geteuid() != 0:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        socket = "unix:///var/run/crio/crio.sock"
        sys.stderr.write(
            f'time="{now}" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
            f'endpoint \\"{socket}\\": rpc error: code = Unavailable desc = connection error: desc = '
            '\\"transport: Error while dialing: dial unix /var/run/crio/crio.sock: '
            'connect: permission denied\\""\n'
        )
        sys.exit(1)


def select(args: argparse.Namespace) -> list[dict]:
    containers = runtime.read_state()["containers"]
    if args.state:
        wanted = STATES.get(args.state.lower())
        containers = [c for c in containers if c["state"] == wanted]
    elif not args.all:
        containers = [c for c in containers if c["state"] == runtime.RUNNING]
    if args.name:
        pattern = re.compile(args.name)
        containers = [c for c in containers if pattern.search(c["name"])]
    for label in args.label or []:
        key, _, value = label.partition("=")
        containers = [c for c in containers if c["labels"].get(key) == value]
    if args.id:
        containers = [c for c in containers if c["id"].startswith(args.id)]
    if args.pod:
        containers = [c for c in containers if c["pod_id"].startswith(args.pod)]
    if args.latest or args.last:
        containers = sorted(containers, key=lambda c: c["created"])[-(args.last or 1) :]
    return sorted(containers, key=lambda c: c["created"], reverse=True)


def cmd_ps(args: argparse.Namespace) -> int:
    require_root()
    containers = select(args)
    if args.quiet:
        sys.stdout.write("".join(f"{c['id']}\n" for c in containers))
        return 0
    if args.output in ("json", "yaml"):
        items = [
            {
                "id": c["id"],
                "podSandboxId": c["pod_id"],
                "metadata": {"name": c["name"], "attempt": c["attempt"]},
                "image": {"image": c["image"]},
                "imageRef": c["image"],
                "state": c["state"],
                "createdAt": str(int(c["created"] * 1e9)),
                "labels": c["labels"],
            }
            for c in containers
        ]
        sys.stdout.write(json.dumps({"containers": items}, indent=2) + "\n")
        return 0
    now = time.time()
    rows = [COLUMNS] + [
        (
            c["id"] if args.no_trunc else c["id"][:13],
            c["image_id"],
            human_duration(now - c["created"]) + " ago",
            "Running" if c["state"] == runtime.RUNNING else "Exited",
            c["name"],
            str(c["attempt"]),
            c["pod_id"] if args.no_trunc else c["pod_id"][:13],
        )
        for c in containers
    ]
    sys.stdout.write(table(rows))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    require_root()
    status = 0
    for ref in args.ids:
        with runtime.locked_state() as state:
            record = runtime.find(state, ref)
            if record is None:
                sys.stderr.write(
                    f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" level=fatal '
                    f'msg="stopping the container \\"{ref}\\": rpc error: code = NotFound desc = '
                    f'could not find container \\"{ref}\\""\n'
                )
                status = 1
                continue
            if record["state"] == runtime.RUNNING:
                if record.get("pid"):
                    runtime.stop_process_group(record["pid"], float(args.timeout))
                runtime.mark_exited(record, 0 if not record.get("pid") else 143)
        print(ref)
    return status


def cmd_exec(args: argparse.Namespace) -> int:
    require_root()
    record = runtime.find(runtime.read_state(), args.id)
    if record is None or record["state"] != runtime.RUNNING:
        sys.stderr.write(
            f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" level=fatal '
            f'msg="execing command in container: rpc error: code = NotFound desc = '
            f'could not find container \\"{args.id}\\""\n'
        )
        return 1
    if not args.command:
        sys.stderr.write('time="" level=fatal msg="exec command cannot be empty"\n')
        return 1
    env = dict(record["exec_env"])
    os.chdir("/")
    try:
        # A child rather than exec: the host's invocation log (invocations.py) sees when it ends.
        status = subprocess.call(args.command, env=env)
    except FileNotFoundError:
        sys.stderr.write(
            f'exec failed: unable to start container process: exec: "{args.command[0]}": '
            "executable file not found in $PATH\n"
        )
        return 126
    return status if status >= 0 else 128 - status


def cmd_logs(args: argparse.Namespace) -> int:
    require_root()
    record = runtime.find(runtime.read_state(), args.id)
    if record is None:
        sys.stderr.write(
            f'level=fatal msg="rpc error: code = NotFound desc = could not find container \\"{args.id}\\""\n'
        )
        return 1
    try:
        with open(record["log"], errors="replace") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        lines = []
    if args.tail is not None and args.tail >= 0:
        lines = lines[-args.tail :] if args.tail else []
    sys.stdout.write("".join(lines))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    require_root()
    state = runtime.read_state()
    out = []
    for ref in args.ids:
        record = runtime.find(state, ref)
        if record is None:
            sys.stderr.write(
                f'level=fatal msg="getting the status of the container \\"{ref}\\": not found"\n'
            )
            return 1
        out.append(
            {
                "status": {
                    "id": record["id"],
                    "metadata": {"name": record["name"], "attempt": record["attempt"]},
                    "state": record["state"],
                    "exitCode": record["exit_code"] or 0,
                    "labels": record["labels"],
                    "image": {"image": record["image"]},
                },
                "info": {"pid": record.get("pid") or 0},
            }
        )
    sys.stdout.write(json.dumps(out[0] if len(out) == 1 else out, indent=2) + "\n")
    return 0


def cmd_pods(args: argparse.Namespace) -> int:
    require_root()
    state = runtime.read_state()
    rows = [("POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME")]
    now = time.time()
    for pod in state["pods"].values():
        created = min(
            (c["created"] for c in state["containers"] if c["pod_id"] == pod["pod_id"]), default=now
        )
        if args.name and not re.search(args.name, pod["pod_name"]):
            continue
        rows.append(
            (
                pod["pod_id"][:13],
                human_duration(now - created) + " ago",
                "Ready",
                pod["pod_name"],
                pod["namespace"],
                "0",
                "(default)",
            )
        )
    if args.quiet:
        sys.stdout.write("".join(f"{p['pod_id']}\n" for p in state["pods"].values()))
        return 0
    sys.stdout.write(table(rows))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="crictl", description="client for CRI (twin host)")
    sub = top.add_subparsers(dest="command_name", required=True)
    ps = sub.add_parser("ps", help="List containers")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--name", default="")
    ps.add_argument("--label", action="append")
    ps.add_argument("--id", default="")
    ps.add_argument("-p", "--pod", default="")
    ps.add_argument("-s", "--state", default="")
    ps.add_argument("-l", "--latest", action="store_true")
    ps.add_argument("-n", "--last", type=int, default=0)
    ps.add_argument("-o", "--output", default="table")
    ps.add_argument("--no-trunc", action="store_true")
    ps.set_defaults(func=cmd_ps)
    stop = sub.add_parser("stop", help="Stop one or more running containers")
    stop.add_argument("-t", "--timeout", type=int, default=10)
    stop.add_argument("ids", nargs="+")
    stop.set_defaults(func=cmd_stop)
    exe = sub.add_parser("exec", help="Run a command in a running container")
    exe.add_argument("-i", "--interactive", action="store_true")
    exe.add_argument("-t", "--tty", action="store_true")
    exe.add_argument("-s", "--sync", action="store_true")
    exe.add_argument("id")
    exe.add_argument("command", nargs=argparse.REMAINDER)
    exe.set_defaults(func=cmd_exec)
    logs = sub.add_parser("logs", help="Fetch the logs of a container")
    logs.add_argument("--tail", type=int, default=None)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("id")
    logs.set_defaults(func=cmd_logs)
    inspect = sub.add_parser("inspect", help="Display the status of one or more containers")
    inspect.add_argument("-o", "--output", default="json")
    inspect.add_argument("ids", nargs="+")
    inspect.set_defaults(func=cmd_inspect)
    pods = sub.add_parser("pods", help="List pods")
    pods.add_argument("--name", default="")
    pods.add_argument("-q", "--quiet", action="store_true")
    pods.set_defaults(func=cmd_pods)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(invocations.logged("crictl", main))
