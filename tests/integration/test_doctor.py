"""`drbot doctor` and `drbot unlock` as an operator runs them, against real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from redis import Redis

from procedures.registry import PROCEDURES
from tests.conftest import ENGINE_DB
from workers import keys
from workers.control import Control
from workers.runs import Run, RunStore


def drbot(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": ENGINE_DB, "DRBOT_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "drbot.cli", *args], capture_output=True, text=True, env=env)


def test_doctor_lists_what_is_stranded_and_unlock_releases_only_ended_runs(
    redis: Redis, tmp_path: Path
) -> None:
    config = tmp_path / "clusters.yaml"
    hosts = [{"name": "m0", "address": "10.0.0.1"}]
    clusters = [
        {"name": n, "ssh": {"key": "/k", "known_hosts": "/kh"}, "hosts": hosts} for n in ("east", "west")
    ]
    config.write_text(yaml.safe_dump({"clusters": clusters}))
    runs = RunStore(redis)
    alive = runs.create(Run(id="r-alive", procedure="backup", cluster="west", channel="C1", requester="U0A"))
    redis.delete(keys.wake(alive.id))
    redis.set(keys.cluster_lock("east"), "r-gone")

    doctor = drbot("doctor", config=config)
    assert doctor.returncode == 1
    assert "stranded lock: cluster east held by run r-gone (missing)" in doctor.stdout
    assert "run r-alive is running but no worker holds it" in doctor.stdout

    refused = drbot("unlock", "west", config=config)
    assert refused.returncode == 1 and "held by run r-alive, which is still going" in refused.stderr
    assert redis.get(keys.cluster_lock("west")) == b"r-alive"
    released = drbot("unlock", "east", config=config)
    assert released.returncode == 0 and "released the lock of cluster east" in released.stdout
    assert redis.get(keys.cluster_lock("east")) is None

    Control(redis, PROCEDURES).abort(alive, "U0A")
    assert drbot("doctor", config=config).stdout.startswith("nothing stranded")
