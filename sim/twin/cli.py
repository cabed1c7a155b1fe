"""`drbot twin ...`: start, inspect, stop and break a twin (a simulated OpenShift control plane)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.twin import disasters, lifecycle
from sim.twin.layout import DEFAULT_SSH_PORT, TwinError, load_spec
from sim.twin.lifecycle import PLATFORMS

HOST_FAULTS = ["host-down", "host-up", "slow-ssh", "fast-ssh", "etcd-member-crash", "kubelet-cert-rotated"]

FAULTS_HELP = """faults (reversible):
  host-down HOST         power the host off: sshd, kubelet and its containers stop
  host-up HOST           power it on again: sshd and kubelet start, kubelet restarts the static pods
  slow-ssh HOST          every SSH session on HOST waits --delay seconds first (undo: --off or fast-ssh)
  fast-ssh HOST          undo slow-ssh
  etcd-member-crash HOST SIGKILL the host's etcd; the kubelet restarts it (data kept)
  kubelet-cert-rotated HOST
                         the kubelet renews its client certificate (new serial, recorded on the Node);
                         a backup taken before no longer matches it once restored
  forged-csr --kind wrong-requestor|unknown-node
                         a CSR an approver must refuse: a bootstrap CSR for a real node filed by another
                         service account, or a proper one for a node that does not exist
HOST is a short name (master-0), a node name (master-0.twin.example.com) or an address."""

DISASTERS_HELP = """disasters (not reversible: restore from a backup):
  lose-quorum   every etcd member but one (--survivor, default the first host) dies with its
                disk: etcd is killed and /var/lib/etcd/member removed; its etcd-pod.yaml stays,
                so the member crash-loops ("member ... has already been bootstrapped").
  expire-certs  every node's kubelet client certificate expires (as after a long shutdown, 5.4.3):
                nodes go NotReady and file node-bootstrapper CSRs; approve them, then (UPI) the
                kubelet-serving CSRs that follow.
  delete-namespace NAME
                someone deletes a namespace and everything in it through the API (default payments,
                the drills' application namespace); only a restore from a backup brings it back."""


def register(subparsers: argparse._SubParsersAction) -> None:
    twin = subparsers.add_parser(
        "twin", help="run a simulated OpenShift control plane (the twin)", description=__doc__
    )
    # `drbot` calls args.func(args); run() turns a TwinError into a message and exit status 2.
    twin.set_defaults(func=run)
    commands = twin.add_subparsers(
        dest="twin_command", required=True, metavar="{up,down,status,disaster,fault}"
    )

    up = commands.add_parser(
        "up",
        help="start a twin",
        description="Start the twin's control-plane hosts: "
        "own loopback address, sshd, mount namespace, kubelet simulator, etcd member each.",
    )
    _dir(up)
    up.add_argument("--hosts", type=int, default=3, help="number of control-plane hosts (default 3)")
    up.add_argument("--name", default="twin", help="twin (cluster) name (default twin)")
    up.add_argument(
        "--first-address",
        default=None,
        help="first host address, 127.0.0.<10k+1> (default: the first free block, 127.0.0.11 ...)",
    )
    up.add_argument(
        "--ssh-port",
        type=int,
        default=DEFAULT_SSH_PORT,
        help=f"sshd port on every host (default {DEFAULT_SSH_PORT})",
    )
    up.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for sshd and etcd (default 60)"
    )
    up.add_argument(
        "--version", default="4.14.38", help="OpenShift z-stream the API reports (default 4.14.38)"
    )
    up.add_argument(
        "--platform",
        choices=PLATFORMS,
        default="installer-provisioned",
        help="installer-provisioned (kubelet-serving CSRs auto-approved) or user-provisioned",
    )
    up.add_argument(
        "--realistic", action="store_true", help="operator timing like a real cluster (minutes per node)"
    )
    up.add_argument(
        "--api-blips",
        type=float,
        default=lifecycle.API_BLIPS,
        metavar="RATE",
        help="share of API requests answered with 500, 429 or a connection reset while only one "
        f"kube-apiserver runs or a kube-apiserver revision rolls out (default {lifecycle.API_BLIPS})",
    )
    up.add_argument(
        "--api-restart",
        type=float,
        default=lifecycle.API_RESTART,
        metavar="SECONDS",
        help="connections refused this long when the kube-apiserver serving the API restarts "
        f"(default {lifecycle.API_RESTART})",
    )
    up.add_argument(
        "--calm", action="store_true", help="no API blips and no restart outages (for tests that ask for it)"
    )
    up.add_argument(
        "--scripts-from",
        type=Path,
        metavar="DIR",
        help="install the cluster-backup.sh and cluster-restore.sh in DIR, copied from a real control-plane "
        "host's /usr/local/bin, instead of the twin's own (etcd.env and etcd-common-tools stay the twin's)",
    )
    up.set_defaults(twin_func=_up)

    down = commands.add_parser("down", help="stop a twin: no process and no mount stays behind")
    _dir(down)
    down.set_defaults(twin_func=_down)

    status = commands.add_parser("status", help="show the twin's hosts, sshd and etcd health")
    _dir(status)
    status.set_defaults(twin_func=_status)

    disaster = commands.add_parser(
        "disaster",
        help="break the twin like a real disaster would",
        description=DISASTERS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    disaster.add_argument("kind", choices=["lose-quorum", "expire-certs", "delete-namespace"])
    disaster.add_argument("namespace", nargs="?", default="payments", help="delete-namespace: which one")
    _dir(disaster)
    disaster.add_argument(
        "--survivor", default=None, help="host whose etcd member survives (default the first host)"
    )
    disaster.set_defaults(twin_func=_disaster)

    fault = commands.add_parser(
        "fault",
        help="inject or clear a fault on one host",
        description=FAULTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("kind", choices=[*HOST_FAULTS, "forged-csr"])
    fault.add_argument("host", nargs="?", help="master-N, the node name or the address")
    fault.add_argument(
        "--kind",
        dest="csr_kind",
        choices=["wrong-requestor", "unknown-node"],
        help="forged-csr kind",
    )
    _dir(fault)
    fault.add_argument(
        "--delay", type=float, default=1.0, help="slow-ssh: seconds added to each session (default 1)"
    )
    fault.add_argument("--off", action="store_true", help="slow-ssh: clear the fault")
    fault.set_defaults(twin_func=_fault)


def _dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", required=True, type=Path, help="the twin's directory (state, keys, clusters.yaml)"
    )


def _up(args: argparse.Namespace) -> int:
    options = lifecycle.ApiOptions(
        version=args.version,
        platform=args.platform,
        realistic=args.realistic,
        blips=0.0 if args.calm else args.api_blips,
        restart=0.0 if args.calm else args.api_restart,
    )
    spec, started = lifecycle.up(
        args.dir,
        args.name,
        args.hosts,
        args.first_address,
        args.ssh_port,
        args.timeout,
        options,
        scripts_from=args.scripts_from,
    )
    if not started:
        print(f"twin {spec.name!r} is already running in {spec.dir}; nothing started")
        return _status(args)
    print(f"twin {spec.name!r} is up: {len(spec.hosts)} hosts, sshd port {spec.ssh_port}")
    for host in spec.hosts:
        print(f"  {host.short}  {host.address}  {host.name}")
    print(
        f"API: https://{spec.api_vip}:{lifecycle.API_PORT} (OpenShift {options.version}, {options.platform}; "
        f"{_blips_text(options)})"
    )
    print(f"kubeconfig: {spec.dir / 'kubeconfig'}")
    print(f"clusters file: {spec.dir / 'clusters.yaml'}")
    print(
        f"cluster-backup.sh, cluster-restore.sh: from {args.scripts_from.resolve()}"
        if args.scripts_from
        else "cluster-backup.sh, cluster-restore.sh: the twin's own"
    )
    print(
        f"ssh: ssh -i {spec.dir / 'id_ed25519'} -o UserKnownHostsFile={spec.dir / 'known_hosts'} "
        f"-p {spec.ssh_port} core@{spec.hosts[0].address}"
    )
    return 0


def _blips_text(options: lifecycle.ApiOptions) -> str:
    if not options.blips and not options.restart:
        return "calm: no API blips"
    return f"API blips {options.blips:g} while fragile, {options.restart:g} s restarts"


def _down(args: argparse.Namespace) -> int:
    stopped = lifecycle.down(args.dir)
    print(f"twin in {args.dir.resolve()} is down ({', '.join(stopped) or 'nothing was running'})")
    return 0


def _status(args: argparse.Namespace) -> int:
    spec, phase, rows = lifecycle.status(args.dir)
    print(
        f"twin {spec.name!r} in {spec.dir}: {phase}; API VIP {spec.api_vip}, ingress VIP {spec.ingress_vip}"
    )
    print(f"{'HOST':<10}{'ADDRESS':<14}{'NODE':<34}{'PID':<9}{'SSHD':<6}ETCD")
    for row in rows:
        print(
            f"{row.host.short:<10}{row.host.address:<14}{row.host.name:<34}{row.pid or '-'!s:<9}"
            f"{'up' if row.sshd else 'down':<6}{'healthy' if row.etcd else 'unhealthy'}"
        )
    url, api = lifecycle.api_status(args.dir)
    print(f"API {url}: {api}; kubeconfig {spec.dir / 'kubeconfig'}")
    return 0 if phase != "down" else 3


def _disaster(args: argparse.Namespace) -> int:
    spec = load_spec(args.dir)
    if args.kind == "delete-namespace":
        disasters.delete_namespace(spec, args.namespace)
        print(f"namespace {args.namespace} and everything in it are deleted")
        return 0
    if args.kind == "expire-certs":
        nodes = disasters.expire_certs(spec)
        print(f"kubelet client certificates expired on {len(nodes)} nodes: {', '.join(nodes)}")
        return 0
    survivor = spec.host(args.survivor) if args.survivor else None
    victims = disasters.lose_quorum(spec, survivor)
    print(f"lost quorum: etcd members on {', '.join(h.short for h in victims)} died with their data")
    return 0


def _fault(args: argparse.Namespace) -> int:
    spec = load_spec(args.dir)
    if args.kind == "forged-csr":
        if not args.csr_kind:
            raise TwinError("fault forged-csr needs --kind wrong-requestor or --kind unknown-node")
        print(f"forged CSR {disasters.forged_csr(spec, args.csr_kind)} ({args.csr_kind}) filed")
        return 0
    if not args.host:
        raise TwinError(f"fault {args.kind} needs a HOST (master-N, the node name or the address)")
    host = spec.host(args.host)
    if args.kind == "kubelet-cert-rotated":
        serial = disasters.rotate_kubelet_cert(spec, host)
        print(f"kubelet-cert-rotated: {host.short} has client certificate {serial}")
        return 0
    if args.kind == "host-down":
        disasters.host_down(spec, host)
    elif args.kind == "host-up":
        disasters.host_up(spec, host)
    elif args.kind in ("slow-ssh", "fast-ssh"):
        disasters.slow_ssh(spec, host, args.delay, off=args.off or args.kind == "fast-ssh")
    else:
        disasters.etcd_member_crash(spec, host)
    print(f"{args.kind}{' --off' if args.off else ''}: done on {host.short} ({host.address})")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return args.twin_func(args)
    except TwinError as error:
        print(f"drbot twin: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.twin")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["twin", *(sys.argv[1:] if argv is None else argv)])
    return run(args)
