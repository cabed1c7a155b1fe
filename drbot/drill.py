"""`drbot drill SCENARIO`: a disaster-recovery drill on a local twin, driven like a person would.

A simulated engineer types commands in the Slack simulator, another clicks the approvals; drbot
serves and works in real processes; the drill then checks the result on the twin's hosts, prints
the channel transcript, the timeline and the time each phase took, and exits non-zero if anything
did not work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from drbot.drills import SCENARIOS
from drbot.drills.common import Report
from drbot.stage import CHANNEL, Stage
from procedures.clusters import load_clusters
from sim.twin import hostscripts
from sim.twin.layout import TwinError
from workers.timeline import Timeline

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
"""The drill empties this database before it starts: keep it apart from a real drbot's."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    drill = commands.add_parser("drill", help="run a disaster-recovery drill on a local twin")
    drill.add_argument("scenario", choices=sorted(SCENARIOS), help="what to drill")
    drill.add_argument("--dir", help="the twin's directory (default: a new temporary one)")
    drill.add_argument("--keep", action="store_true", help="leave the twin running and say how to reach it")
    drill.add_argument(
        "--calm",
        action="store_true",
        help="a twin whose API never blips (by default it fails requests while it runs on one "
        "kube-apiserver or rolls a revision, as a real cluster does during a restore)",
    )
    drill.add_argument(
        "--scripts-from",
        type=Path,
        metavar="DIR",
        help="the twin's hosts run the cluster-backup.sh and cluster-restore.sh in DIR, copied from a real "
        "control-plane host's /usr/local/bin, instead of the twin's own",
    )
    drill.add_argument(
        "--redis-url",
        default=os.environ.get("DRBOT_DRILL_REDIS_URL", DEFAULT_REDIS),
        help=f"Redis database the drill may empty (default {DEFAULT_REDIS})",
    )
    drill.set_defaults(func=run_drill)


def run_drill(args: argparse.Namespace) -> int:
    try:
        options = twin_options(args)
    except TwinError as error:
        print(f"drbot drill: {error}", file=sys.stderr)
        return 2
    directory = Path(args.dir or tempfile.mkdtemp(prefix="drbot-drill-"))
    report = Report()
    stage = Stage(directory, args.redis_url, keep_twin=args.keep, twin_options=options)
    with report.phase("twin up, drbot serve and drbot worker start"):
        try:
            stage.up()
        except Exception as error:
            stage.down()
            print(f"DRILL FAILED: the stage did not come up: {error}")
            return 1
    try:
        SCENARIOS[args.scenario](stage, report)
    except Exception as error:
        report.failures.append(f"the drill stopped: {error}")
    finally:
        print_outcome(stage)
        with report.phase("shut down"):
            stage.down()
    print_phases(report)
    if args.keep:
        print_how_to_reach(directory)
    print("DRILL FAILED: " + "; ".join(report.failures) if report.failures else "DRILL PASSED")
    return 1 if report.failures else 0


def twin_options(args: argparse.Namespace) -> tuple[str, ...]:
    """What `drbot twin up` is given; scripts from a directory are checked before anything starts."""
    options: tuple[str, ...] = ("--calm",) if args.calm else ()
    if args.scripts_from:
        hostscripts.load(args.scripts_from)
        options += ("--scripts-from", str(args.scripts_from.resolve()))
    return options


def print_outcome(stage: Stage) -> None:
    print("\n=== Channel transcript ===")
    print(stage.slack.transcript(CHANNEL))
    print("\n=== Incident timeline ===")
    print(Timeline(stage.redis()).export_markdown(CHANNEL))


def print_phases(report: Report) -> None:
    print("=== Phases ===")
    for name, seconds in report.phases:
        print(f"{seconds:8.2f} s  {name}")


def print_how_to_reach(directory: Path) -> None:
    clusters = load_clusters(directory / "clusters.yaml")
    cluster = clusters.get(clusters.names()[0])
    host = cluster.hosts[0]
    print(f"\nThe twin keeps running in {directory}.")
    print(f"  clusters file: {directory / 'clusters.yaml'}")
    if cluster.kubeconfig:
        print(f"  kubeconfig:    {cluster.kubeconfig}")
    print(
        f"  ssh:           ssh -i {host.key} -o UserKnownHostsFile={host.known_hosts} -p {host.port} "
        f"{host.user}@{host.address}"
    )
    print(f"  stop it:       drbot twin down --dir {directory}")
