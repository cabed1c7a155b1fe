"""The `drbot` command: the one place that wires the bot, the workers, the procedures and the twin."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import threading
from pathlib import Path

from slack_sdk import WebClient

from drbot.redis_check import check_redis
from drbot.settings import Settings, SettingsError
from procedures.clusters import LANGUAGES, ConfigError
from procedures.plan import render_text
from procedures.registry import PROCEDURES
from workers.redact import install_log_redaction, redact, register_environment_secrets
from workers.timeline import Timeline


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Before anything runs: every log line and uncaught traceback of this process is redacted, and the
    # secrets it was given (Slack tokens, the Redis password, AWS keys) are redacted wherever they appear.
    install_log_redaction()
    register_environment_secrets(os.environ)
    try:
        return int(args.func(args) or 0)
    except (SettingsError, ConfigError) as error:
        print(f"drbot: {redact(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the Slack bot (HTTP, or Socket Mode)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000)")
    serve.add_argument("--socket-mode", action="store_true", help="take Slack's requests over Socket Mode")
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run a worker that carries out procedure steps")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--lease",
        type=int,
        default=10,
        help="seconds after which a dead worker's run is picked up again (default 10)",
    )
    worker.set_defaults(func=_worker)

    plan = commands.add_parser("plan", help="show a procedure's steps without running anything")
    plan.add_argument("procedure", choices=sorted(PROCEDURES))
    plan.add_argument("--cluster", help="a cluster from the clusters file, to show its hosts")
    plan.add_argument("--language", choices=LANGUAGES, default="en")
    plan.set_defaults(func=_plan)

    timeline = commands.add_parser("timeline", help="the incident timeline")
    timeline_commands = timeline.add_subparsers(dest="timeline_command", required=True, metavar="ACTION")
    export = timeline_commands.add_parser("export", help="write an incident's timeline as Markdown")
    export.add_argument("incident", help="the incident: the Slack channel id the runs were started in")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.add_argument("--language", choices=LANGUAGES, default="en")
    export.set_defaults(func=_timeline_export)

    unlock = commands.add_parser(
        "unlock", help="release a cluster lock left by a run that has ended (never a live run's)"
    )
    unlock.add_argument("cluster", help="the cluster's name")
    unlock.set_defaults(func=_unlock)

    doctor = commands.add_parser("doctor", help="list stranded cluster locks and runs no worker holds")
    doctor.set_defaults(func=_doctor)

    from drbot import drill
    from sim.twin import cli as twin_cli

    drill.register(commands)
    twin_cli.register(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from bot.app import build_app
    from bot.deps import Deps
    from bot.notifier import Notifier
    from bot.outbox import Outbox
    from bot.outbox_sender import OutboxSender, make_web_client
    from bot.server import Background, serve

    settings = Settings.from_env()
    settings.require_slack(args.socket_mode)
    redis, clusters = settings.redis(answering_slack=True), settings.clusters()
    check_redis(redis)
    web = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    deps = Deps(redis=redis, clusters=clusters, procedures=PROCEDURES, outbox=Outbox(redis), web=web)
    notifier = Notifier(
        redis,
        deps.outbox,
        PROCEDURES,
        clusters,
        lambda run: deps.language(run.channel, clusters.by_name.get(run.cluster)),
    )
    # The sender's client never retries by itself: a retried chat.postMessage can post twice, and
    # the outbox already retries with its own pacing.
    sender = OutboxSender(redis, make_web_client(settings.slack_bot_token, settings.slack_api_url))
    background = Background(notifier, sender, threading.Event())
    app = build_app(
        deps,
        token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        api_url=settings.slack_api_url,
    )
    serve(app, deps, background, args.host, args.port, settings.slack_app_token if args.socket_mode else "")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from workers.worker import run_worker

    settings = Settings.from_env()
    redis = settings.redis()
    check_redis(redis)
    run_worker(redis, settings.clusters(), lease_seconds=args.lease, burst=args.burst)
    return 0


def _unlock(args: argparse.Namespace) -> int:
    from workers.control import Control

    control = Control(Settings.from_env().redis(), PROCEDURES)
    answer, owner = control.unlock(args.cluster, f"{getpass.getuser()} (drbot unlock)")
    if answer == "released":
        print(f"released the lock of cluster {args.cluster}: its run {owner} has ended")
        return 0
    if answer == "alive":
        print(
            f"drbot: cluster {args.cluster} is held by run {owner}, which is still going; nothing was "
            f"released. Stop it first (/dr abort {owner}).",
            file=sys.stderr,
        )
        return 1
    print(f"cluster {args.cluster} is not locked; nothing to release")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from workers.health import stranded_locks, unheld_runs

    redis = Settings.from_env().redis()
    locks, runs = stranded_locks(redis), unheld_runs(redis)
    for lock in locks:
        print(
            f"stranded lock: cluster {lock.cluster} held by run {lock.run_id} ({lock.why}); "
            f"release it with `drbot unlock {lock.cluster}`"
        )
    for run_id in runs:
        print(f"run {run_id} is running but no worker holds it; a running `drbot worker` revives it")
    if not locks and not runs:
        print("nothing stranded: every lock belongs to a live run, and every running run has a worker")
    return 1 if locks or runs else 0


def _plan(args: argparse.Namespace) -> int:
    cluster = None
    if args.cluster:
        cluster = Settings.from_env().clusters().get(args.cluster)
    print(render_text(PROCEDURES[args.procedure], cluster, args.language))
    return 0


def _timeline_export(args: argparse.Namespace) -> int:
    text = Timeline(Settings.from_env().redis()).export_markdown(args.incident, args.language)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
