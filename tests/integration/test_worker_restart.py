"""`drbot worker` outlives a Redis restart and serves the new Redis (the chaos suite saw workers quit
when Redis restarted under them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from redis import Redis

from tests.redis_server import redis_server
from workers.queue import enqueue_advance, queue


def test_the_worker_keeps_running_across_a_redis_restart(tmp_path: Path) -> None:
    config = tmp_path / "clusters.yaml"
    cluster = {
        "name": "prod",
        "ssh": {"key": "/k", "known_hosts": "/kh"},
        "hosts": [{"name": "m", "address": "10.0.0.1"}],
    }
    config.write_text(yaml.safe_dump({"clusters": [cluster]}))
    with redis_server(tmp_path / "first") as first:
        port = first.port
        env = {**os.environ, "REDIS_URL": first.url, "DRBOT_CONFIG": str(config)}
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "drbot.cli", "worker", "--lease", "3"], env=env, stdout=log, stderr=log
        )
        try:
            wait_for_a_job(first.client, worker)
            first.process.kill()
            first.process.wait()
            time.sleep(5)
            assert worker.poll() is None, "the worker did not exit while Redis was away"
            with redis_server(tmp_path / "second", port=port) as second:
                wait_for_a_job(second.client, worker)
        finally:
            worker.kill()
            worker.wait()
            log.close()


def wait_for_a_job(redis: Redis, worker: subprocess.Popen[bytes]) -> None:
    """Queue an advance job (for a run that does not exist) and wait until the worker has done it."""
    enqueue_advance(redis, "r-none")
    deadline = time.monotonic() + 120
    while queue(redis).count or not queue(redis).finished_job_registry.get_job_ids():
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "the worker did not take the job"
        time.sleep(0.2)
