"""`python -m sim.kubeapi`: run one cluster's API server (and its simulated operators) in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .etcd import EtcdUnavailable
from .operators import Timing
from .seed import ClusterFacts, NodeFacts, seed_cluster
from .server import KubeApiServer


def _nodes(text: str, flag: str) -> list[NodeFacts]:
    nodes = []
    for item in filter(None, text.split(",")):
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise SystemExit(
                f"{flag}: {item!r} is not NAME=ADDRESS (e.g. {flag} master-0=127.0.0.11,master-1=127.0.0.12)"
            )
        nodes.append(NodeFacts(name, address))
    return nodes


def _up_check(args: argparse.Namespace) -> Callable[[], bool]:
    if args.up_file:
        path = Path(args.up_file)
        return path.exists
    if args.up_command:
        state = {"at": 0.0, "up": False}
        lock = threading.Lock()

        def check() -> bool:
            with lock:
                # Cached briefly: the check runs once per request.
                if time.monotonic() - state["at"] > 0.5:
                    result = subprocess.run(args.up_command, shell=True, capture_output=True, timeout=5)
                    state.update(at=time.monotonic(), up=result.returncode == 0)
                return bool(state["up"])

        return check
    return lambda: True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.kubeapi", description=__doc__)
    parser.add_argument("--etcd-endpoints", required=True, help="comma-separated https://HOST:2379 URLs")
    parser.add_argument("--etcd-cacert", required=True, help="CA that signed the etcd serving certificates")
    parser.add_argument("--etcd-cert", required=True, help="etcd client certificate")
    parser.add_argument("--etcd-key", required=True, help="etcd client key")
    parser.add_argument(
        "--state-dir", required=True, help="where the CA, serving cert, token and kubeconfig live"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--cluster-name", default="twin")
    parser.add_argument("--version", default="4.14.38", help="OpenShift z-stream, e.g. 4.14.38")
    parser.add_argument("--masters", default="", help="NAME=ADDRESS,... control-plane nodes to seed")
    parser.add_argument(
        "--workers", default=None, help="NAME=ADDRESS,... worker nodes (default: two AWS-style names)"
    )
    parser.add_argument("--no-seed", action="store_true", help="do not create the initial cluster objects")
    parser.add_argument("--no-operators", action="store_true", help="do not run the simulated operators")
    parser.add_argument(
        "--realistic", action="store_true", help="operator timing like a real cluster (minutes)"
    )
    parser.add_argument(
        "--upi", action="store_true", help="user-provisioned: kubelet-serving CSRs need a human"
    )
    parser.add_argument(
        "--replace-deleted-masters",
        action="store_true",
        help="act like a ControlPlaneMachineSet: a deleted master Machine gets a replacement automatically",
    )
    up = parser.add_mutually_exclusive_group()
    up.add_argument("--up-file", help="the control plane counts as up only while this file exists")
    up.add_argument("--up-command", help="shell command; exit status 0 means the control plane is up")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.no_seed and not args.masters:
        parser.error("--masters NAME=ADDRESS,... is needed to seed the cluster (or pass --no-seed)")
    return args


def _seed_when_ready(server: KubeApiServer, facts: ClusterFacts, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            created = seed_cluster(server.store, facts)
        except EtcdUnavailable as exc:
            logging.warning("seed: etcd not reachable yet (%s); retrying", exc)
            stop.wait(1)
            continue
        logging.info("seed: %d objects created", created)
        return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _run(args)
    except (ValueError, OSError) as exc:
        # Bad endpoints, unreadable certificate files, a taken address: say which, without a traceback.
        print(f"python -m sim.kubeapi: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    server = KubeApiServer(
        etcd_endpoints=args.etcd_endpoints.split(","),
        etcd_ca=args.etcd_cacert,
        etcd_cert=args.etcd_cert,
        etcd_key=args.etcd_key,
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        control_plane_up=_up_check(args),
        openshift_version=args.version,
        installer_provisioned=not args.upi,
        timing=Timing.realistic() if args.realistic else Timing.fast(),
        run_operators=not args.no_operators,
        replace_deleted_masters=args.replace_deleted_masters,
        cluster_name=args.cluster_name,
    )
    facts = None
    if not args.no_seed:
        kwargs = {"workers": _nodes(args.workers, "--workers")} if args.workers is not None else {}
        facts = ClusterFacts(
            masters=_nodes(args.masters, "--masters"),
            version=args.version,
            cluster_name=args.cluster_name,
            **kwargs,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"kubeapi listening on {server.url}; kubeconfig {server.kubeconfig_path}", flush=True)
    if facts is not None:
        _seed_when_ready(server, facts, stop)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
