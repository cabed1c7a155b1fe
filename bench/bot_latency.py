"""Benchmarks of drbot's own overhead; prints figures next to the targets in
shared/reference/performance-anchors.md.

1. Slash-command ack through the HTTP server: signed `/dr status` and `/dr backup` requests to a real
   `drbot serve` process (uvicorn + Bolt), one keep-alive connection, p50/p99.
2. Enqueue to first step: Control.start() → the journal's first "started" entry, with a real
   `drbot worker` process idle on the queue.
3. Engine overhead per step: a run of no-op steps advanced in-process (journal, events, timeline and
   run state written to Redis for every step).

Uses Redis database 14 (emptied), the Slack simulator for auth.test, and loopback only.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import yaml
from redis import Redis

from procedures.clusters import parse_clusters
from procedures.i18n import msg
from procedures.registry import PROCEDURES
from procedures.steps import Call, Outcome, Procedure
from sim.slack.driver import SlackSim
from workers.control import Control
from workers.engine import Engine
from workers.journal import Journal
from workers.pools import PoolCache

REDIS_URL = "redis://127.0.0.1:6379/14"
SECRET = "bench-secret"
PORT = 3931
CLUSTERS_YAML = """clusters:
  - name: bench
    approvers: [U0BOB]
    ssh: {user: core, key: /nonexistent, known_hosts: /nonexistent}
    hosts: [{name: master-0, address: 127.0.0.99, port: 1}]
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def signed_request(conn: http.client.HTTPConnection, text: str) -> float:
    body = urllib.parse.urlencode(
        {
            "command": "/dr",
            "text": text,
            "user_id": "U0ALICE",
            "channel_id": "C0BENCH",
            "team_id": "T0",
            "response_url": "http://127.0.0.1:9/none",
            "trigger_id": "1.1.x",
            "token": "x",
        }
    )
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    started = time.perf_counter()
    conn.request("POST", "/slack/events", body, headers)
    response = conn.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"/dr {text} answered {response.status}")
    return elapsed


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("drbot serve did not become ready")


def bench_ack(redis: Redis, env: dict[str, str]) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "drbot.cli", "serve", "--port", str(PORT)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(PORT)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
        control = Control(redis, PROCEDURES)
        for _ in range(50):
            signed_request(conn, "status")
        status = [signed_request(conn, "status") for _ in range(1000)]
        starts = []
        for _ in range(300):
            starts.append(signed_request(conn, "backup bench"))
            owner = control.runs.owner_of("bench")
            if owner:
                control.abort(control.runs.load(owner), "U0ALICE")  # no worker holds it: stops now
        print("1. Slash-command ack through drbot serve (uvicorn + Bolt, process_before_response), ms")
        print("   target (anchors): p99 <= 2 ms at c=1")
        for name, values in (("/dr status", status), ("/dr backup (creates a run, enqueues)", starts)):
            print(
                f"   {name:40s} n={len(values):4d}  p50={statistics.median(values):6.2f}  "
                f"p99={percentile(values, 99):6.2f}  max={max(values):6.2f}"
            )
    finally:
        server.terminate()
        server.wait()


def bench_dispatch(redis: Redis, env: dict[str, str]) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "drbot.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    control = Control(redis, PROCEDURES)
    latencies = []
    try:
        time.sleep(2)
        for _ in range(60):
            started = time.time()
            run = control.start("backup", "bench", "C0BENCH", "U0ALICE")
            journal = Journal(redis, run.id)
            deadline = time.monotonic() + 10
            while not journal.entries():
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker never started the first step")
                time.sleep(0.0005)
            latencies.append((journal.entries()[0]["at"] - started) * 1000)
            while control.runs.owner_of("bench"):
                time.sleep(0.005)
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait()
    print("2. Enqueue to first step (Control.start → journal 'started', drbot worker = RQ SimpleWorker), ms")
    print("   target (anchors): p95 <= 5 ms for RQ dispatch")
    print(
        f"   n={len(latencies)}  p50={statistics.median(latencies):.2f}  "
        f"p95={percentile(latencies, 95):.2f}  max={max(latencies):.2f}"
    )


def bench_engine(redis: Redis) -> None:
    steps = tuple(
        Call(
            id=f"noop-{i}",
            title=msg("step.ok"),
            section="bench",
            call=lambda ctx: Outcome(True, msg("step.ok")),
        )
        for i in range(50)
    )
    procedures = {"noop": Procedure("noop", msg("step.ok"), "bench", steps)}
    clusters = parse_clusters(yaml.safe_load(CLUSTERS_YAML))
    engine = Engine(redis, clusters, procedures, PoolCache())
    control = Control(redis, procedures)
    per_step = []
    for _ in range(10):
        run = control.start("noop", "bench", "C0BENCH", "U0ALICE")
        started = time.perf_counter()
        engine.advance(run.id)
        per_step.append((time.perf_counter() - started) * 1000 / len(steps))
    print("3. Engine overhead per step (journal, events, timeline, run state in Redis), ms")
    print(
        f"   runs of {len(steps)} no-op steps: median={statistics.median(per_step):.3f}  "
        f"min={min(per_step):.3f}  max={max(per_step):.3f}"
    )


def main() -> int:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    with (
        tempfile.TemporaryDirectory() as tmp,
        SlackSim(bot_token="xoxb-bench", signing_secret=SECRET) as slack,
    ):
        config = Path(tmp) / "clusters.yaml"
        config.write_text(CLUSTERS_YAML)
        env = {
            **os.environ,
            "REDIS_URL": REDIS_URL,
            "DRBOT_CONFIG": str(config),
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
        }
        bench_ack(redis, env)
        redis.flushdb()
        bench_dispatch(redis, env)
        redis.flushdb()
        bench_engine(redis)
    redis.flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
