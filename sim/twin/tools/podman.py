"""podman for a twin host: `run` of the etcd image (runbook 5.4.2.3) and create/mount/rm (dl_etcdctl).

"Images" are the host itself, as the etcd image: its /usr/bin is the machine's (runtime.IMAGE_BIN), with
the etcdctl that the host itself does not have.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import invocations
import runtime

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PR_SET_PDEATHSIG = 1


def need_root() -> None:
    if os.geteuid() != 0:
        sys.stderr.write("Error: cannot run podman as a non-root user on this host (twin)\n")
        sys.exit(125)


def cmd_run(args: argparse.Namespace) -> int:
    need_root()
    binds = []
    for volume in args.volume or []:
        parts = volume.split(":")
        if len(parts) < 2 or not os.path.exists(parts[0]):
            sys.stderr.write(f"Error: statfs {parts[0]}: no such file or directory\n")
            return 125
        binds.append((parts[0], parts[1]))
    entrypoint = [args.entrypoint] if args.entrypoint else ["/bin/bash"]
    env = {"PATH": PATH, "HOME": "/root", "TERM": os.environ.get("TERM", "xterm"), "ETCDCTL_API": "3"}
    for item in args.env or []:
        key, _, value = item.partition("=")
        env[key] = value if _ else os.environ.get(key, "")
    moved = [(src, dst) for src, dst in binds if os.path.realpath(src) != os.path.realpath(dst)]
    # A private mount namespace, as the container has: its /usr/bin is the image's (etcdctl included),
    # and volumes at another path are mounted there.
    script = f'mount -o bind,ro "{runtime.IMAGE_BIN}" /usr/bin && '
    script += "".join(f'mkdir -p "{d}" && mount --bind "{s}" "{d}" && ' for s, d in moved)
    argv = ["unshare", "--mount", "--propagation", "private", "/bin/bash", "-c", script + 'exec "$@"']
    argv += ["podman-run", *entrypoint, *args.command]
    # Outside the host's mount namespace, only this tie ends the container when the host powers off.
    return subprocess.call(argv, env=env, cwd="/", preexec_fn=die_with_parent)


def die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def rootfs(container: str) -> str:
    return os.path.join(runtime.PODMAN_DIR, container, "rootfs")


def cmd_create(args: argparse.Namespace) -> int:
    need_root()
    container = uuid.uuid4().hex + uuid.uuid4().hex
    root = rootfs(container)
    os.makedirs(os.path.join(root, "bin"))
    for tool in ("etcd", *runtime.IMAGE_ONLY_TOOLS):
        if os.path.exists(os.path.join(runtime.IMAGE_BIN, tool)):
            os.symlink(os.path.join(runtime.IMAGE_BIN, tool), os.path.join(root, "bin", tool))
    with open(os.path.join(runtime.PODMAN_DIR, container, "image"), "w") as handle:
        handle.write(args.image)
    print(container)
    return 0


def cmd_mount(args: argparse.Namespace) -> int:
    need_root()
    merged = os.path.join(runtime.PODMAN_DIR, args.container, "merged")
    if not os.path.isdir(rootfs(args.container)):
        sys.stderr.write(f'Error: no container with name or ID "{args.container}" found: no such container\n')
        return 125
    os.makedirs(merged, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(rootfs(args.container).encode(), merged.encode(), None, 4096, None) != 0:
        sys.stderr.write(f"Error: mounting {merged}: {os.strerror(ctypes.get_errno())}\n")
        return 125
    print(merged)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    need_root()
    status = 0
    for container in args.containers:
        path = os.path.join(runtime.PODMAN_DIR, container)
        if not os.path.isdir(path):
            sys.stderr.write(f'Error: no container with name or ID "{container}" found: no such container\n')
            status = 1
            continue
        merged = os.path.join(path, "merged")
        if os.path.ismount(merged):
            subprocess.call(["umount", merged])
        shutil.rmtree(path)
        print(container)
    return status


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="podman")
    sub = top.add_subparsers(dest="verb", required=True)
    run = sub.add_parser("run")
    run.add_argument("--rm", action="store_true")
    run.add_argument("-i", "--interactive", action="store_true")
    run.add_argument("-t", "--tty", action="store_true")
    run.add_argument("--entrypoint")
    run.add_argument("-v", "--volume", action="append")
    run.add_argument("-e", "--env", action="append")
    run.add_argument("--network")
    run.add_argument("--privileged", action="store_true")
    run.add_argument("--authfile")
    run.add_argument("image")
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_run)
    create = sub.add_parser("create")
    create.add_argument("--authfile")
    create.add_argument("image")
    create.set_defaults(func=cmd_create)
    mount = sub.add_parser("mount")
    mount.add_argument("container")
    mount.set_defaults(func=cmd_mount)
    rm = sub.add_parser("rm")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("containers", nargs="+")
    rm.set_defaults(func=cmd_rm)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(invocations.logged("podman", main))
