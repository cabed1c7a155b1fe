"""Two `drbot serve` replicas on one Redis and one Slack simulator deliver every run's messages in order,
none twice and none lost, while one replica is SIGKILLed in the middle and while Slack takes longer
than the outbox lock's TTL to answer.

The test plays the workers' part: it stores runs and appends their events to the events stream, as
`drbot worker` does. Everything from the stream to Slack is the real bot processes over HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from redis import Redis

from drbot.stage import free_port
from procedures.i18n import Msg, msg, t
from sim.slack.driver import SlackSim
from workers import events, keys
from workers.runs import Run, RunStore, new_run_id

DB = "redis://127.0.0.1:6379/12"
LOCK_TTL = 1.5
"""The outbox lock's and the notifier lease's TTL in the replicas, short so take-overs are quick."""
SLOW_CALL = 4.0
"""How long Slack sits on a slow call: well past LOCK_TTL."""
CHANNELS = ("C0EAST", "C0WEST")
CLUSTERS = {"east-a": "C0EAST", "east-b": "C0EAST", "west": "C0WEST"}
"""Two runs share the east channel, so their messages interleave in one outbox."""
NOTES = 6


class Replicas:
    """`drbot serve` processes on loopback; stop_all() ends every one that was started."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        port = free_port()
        with (self.logs / f"serve-{len(self.started)}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "drbot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        wait_for(
            lambda: self._ready(process, port), 120, f"drbot serve (pid {process.pid}) to be ready", self
        )
        return process

    def _ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"drbot serve exited with {process.returncode}:\n{self.log_tails()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("serve-*")))

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def eventually(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for(predicate: Callable[[], object], timeout: float, what: str, replicas: Replicas) -> None:
    if not eventually(predicate, timeout):
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{replicas.log_tails()}")


@pytest.fixture
def db() -> Iterator[Redis]:
    client = Redis.from_url(DB)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def slack() -> Iterator[SlackSim]:
    with SlackSim(channels={c: c.lower() for c in CHANNELS}) as sim:
        yield sim


@pytest.fixture
def replicas(db: Redis, slack: SlackSim, tmp_path: Path) -> Iterator[Replicas]:
    config = tmp_path / "clusters.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": name,
                        "channel": channel,
                        "kubeconfig": "unused",
                        "ssh": {"key": "unused", "known_hosts": "unused"},
                        "hosts": [{"name": "master-0", "address": "127.0.0.1"}],
                    }
                    for name, channel in CLUSTERS.items()
                ]
            }
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DRBOT_"))},
        "REDIS_URL": DB,
        "DRBOT_CONFIG": str(config),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.url,
        "DRBOT_OUTBOX_LOCK_TTL": str(LOCK_TTL),
        "DRBOT_NOTIFIER_LEASE_TTL": str(LOCK_TTL),
    }
    group = Replicas(env, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def holder_pid(redis: Redis, key: str) -> int | None:
    """The pid in a lease or lock value ("host:pid:suffix"), or None when nobody holds it."""
    owner = redis.get(key)
    return int(owner.decode().split(":")[-2]) if owner else None


def note(cluster: str, n: int) -> Msg:
    return msg("note.added", user="U0ALICE", text=f"{cluster} note {n}")


def start_runs(redis: Redis) -> dict[str, str]:
    store, runs = RunStore(redis), {}
    for cluster, channel in CLUSTERS.items():
        run = Run(id=new_run_id(), procedure="backup", cluster=cluster, channel=channel, requester="U0ALICE")
        runs[cluster] = store.create(run).id
        events.emit(redis, events.RUN_STARTED, runs[cluster])
    return runs


def emit_note(redis: Redis, runs: dict[str, str], n: int) -> None:
    """Note n of every run, interleaved across runs as concurrent workers would report them."""
    for cluster, run_id in runs.items():
        events.emit(redis, events.NOTE, run_id, who="drbot", text=note(cluster, n).to_json())


def expected_thread(cluster: str, run_id: str) -> list[str]:
    return [t(note(cluster, n)) for n in range(1, NOTES + 1)] + [t("thread.run_succeeded", run=run_id)]


def thread_of(slack: SlackSim, channel: str, run_id: str) -> list[str]:
    statuses = [m for m in slack.messages(channel) if f"(run {run_id})" in m.text]
    return [m.text for m in slack.thread(channel, statuses[0].ts)] if statuses else []


def settled(redis: Redis) -> bool:
    """Every event is in the outbox and every outbox was sent."""
    last = redis.xrevrange(keys.events(), count=1)[0][0]
    return redis.get(keys.notifier_cursor()) == last and not redis.smembers(keys.outbox_channels())


def refused_in(slack: SlackSim, channel: str) -> bool:
    return any(c.status == 503 and c.args.get("channel") == channel for c in slack.calls())


def test_two_replicas_deliver_each_run_in_order_through_a_kill_and_slow_slack(
    db: Redis, slack: SlackSim, replicas: Replicas
) -> None:
    first = replicas.start()
    wait_for(lambda: holder_pid(db, keys.notifier_lease()) == first.pid, 10, "the notifier lease", replicas)

    # Slack refuses every post and edit for a while, so the first replica ends up holding both
    # channels' locks with entries waiting; no call of it can then be between Slack's answer and the
    # removal of its entry, the one moment a SIGKILL legitimately makes a message go out twice.
    slack.inject(503, count=1_000_000, method="chat.postMessage")
    slack.inject(503, count=1_000_000, method="chat.update")
    runs = start_runs(db)
    emit_note(db, runs, 1)
    wait_for(
        lambda: all(
            holder_pid(db, keys.outbox_sender(c)) == first.pid and refused_in(slack, c) for c in CHANNELS
        ),
        15,
        "the first replica to hold both channels",
        replicas,
    )
    second = replicas.start()
    emit_note(db, runs, 2)
    last = db.xrevrange(keys.events(), count=1)[0][0]
    wait_for(lambda: db.get(keys.notifier_cursor()) == last, 10, "note 2 in the outbox", replicas)
    emit_note(db, runs, 3)
    first.send_signal(signal.SIGKILL)
    first.wait()
    emit_note(db, runs, 4)
    third = replicas.start()
    survivors = {second.pid, third.pid}
    wait_for(
        lambda: (
            holder_pid(db, keys.notifier_lease()) in survivors
            and all(holder_pid(db, keys.outbox_sender(c)) in survivors for c in CHANNELS)
        ),
        20,
        "the survivors to take over the lease and the channels",
        replicas,
    )
    slack.clear_faults()

    # Slack now sits on two posts to the east channel for longer than the lock's TTL, while the
    # other replica keeps trying to take that channel.
    slack.delay(SLOW_CALL, count=2, method="chat.postMessage", channel="C0EAST")
    for n in range(5, NOTES + 1):
        emit_note(db, runs, n)
    for run_id in runs.values():
        events.emit(db, events.RUN_FINISHED, run_id, status="succeeded")

    # Everything rendered and sent; then compare, so that a wrong thread shows as a diff.
    assert eventually(lambda: settled(db), 120), f"messages still pending\n{replicas.log_tails()}"
    for cluster, run_id in runs.items():
        assert thread_of(slack, CLUSTERS[cluster], run_id) == expected_thread(cluster, run_id)
    for channel in CHANNELS:
        started_here = [run_id for cluster, run_id in runs.items() if CLUSTERS[cluster] == channel]
        top_level = [m.text for m in slack.messages(channel)]
        assert [r for text in top_level for r in started_here if f"(run {r})" in text] == started_here
        assert len(top_level) == len(started_here), "one status message per run, nothing else"
    delivered = sum(len(slack.all_messages(c)) for c in CHANNELS)
    assert len([c for c in slack.calls("chat.postMessage") if c.status == 200]) == delivered, "none twice"
    assert slack.server.faults.pending() == 0, "both slow calls were made"
    assert db.llen(keys.outbox_dead_letters()) == 0
