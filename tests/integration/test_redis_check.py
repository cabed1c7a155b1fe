"""`drbot worker` against real redis-servers of its own: refused when Redis may evict keys, started
(with a warning) when Redis would forget runs on restart.

Each server is a separate redis-server on a free 127.0.0.1 port, so the machine's shared Redis on
6379, which other tests use, keeps its configuration.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from redis import Redis

from tests.redis_server import NO_PERSISTENCE, redis_server

PERSISTENCE_OFF = "Redis persistence is off"
REFUSED_EXIT = 2


@pytest.fixture(scope="module")
def clusters_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "clusters.yaml"
    cluster = {
        "name": "prod",
        "ssh": {"key": "/k", "known_hosts": "/kh"},
        "hosts": [{"name": "m0", "address": "10.0.0.1"}],
    }
    path.write_text(yaml.safe_dump({"clusters": [cluster]}))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """One server for the tests that only change settings CONFIG SET can change."""
    with redis_server(tmp_path_factory.mktemp("redis"), *NO_PERSISTENCE) as server:
        yield server.client


def worker(client: Redis, clusters_file: Path) -> subprocess.CompletedProcess[str]:
    """`drbot worker --burst`: it exits once the (empty) queue is drained, if it starts at all."""
    kwargs = client.connection_pool.connection_kwargs
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{kwargs['port']}/0",
        "DRBOT_CONFIG": str(clusters_file),
    }
    return subprocess.run(
        [sys.executable, "-m", "drbot.cli", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru"])
def test_worker_refuses_a_redis_that_may_evict_keys(server: Redis, clusters_file: Path, policy: str) -> None:
    server.config_set("maxmemory-policy", policy)
    result = worker(server, clusters_file)
    assert result.returncode == REFUSED_EXIT, result.stderr
    assert f"drbot: Redis (REDIS_URL) has maxmemory-policy {policy}" in result.stderr
    assert "CONFIG SET maxmemory-policy noeviction" in result.stderr


def test_worker_starts_on_noeviction_and_warns_once_that_persistence_is_off(
    server: Redis, clusters_file: Path
) -> None:
    server.config_set("maxmemory-policy", "noeviction")
    assert server.config_get("save") == {"save": ""}
    assert server.config_get("appendonly") == {"appendonly": "no"}
    result = worker(server, clusters_file)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(PERSISTENCE_OFF) == 1
    assert "WARNING drbot.redis_check" in result.stderr


def test_worker_starts_silently_on_noeviction_with_aof(tmp_path: Path, clusters_file: Path) -> None:
    options = ("--maxmemory-policy", "noeviction", "--appendonly", "yes", "--appendfsync", "everysec")
    with redis_server(tmp_path, "--save", "", *options) as server:
        result = worker(server.client, clusters_file)
    assert result.returncode == 0, result.stderr
    assert "drbot.redis_check" not in result.stderr


def test_worker_reads_the_policy_from_info_when_config_is_renamed(
    tmp_path: Path, clusters_file: Path
) -> None:
    # As on managed Redis services that rename CONFIG away.
    renamed = ("--rename-command", "CONFIG", "", "--maxmemory-policy", "volatile-lru")
    with redis_server(tmp_path, *NO_PERSISTENCE, *renamed) as server:
        result = worker(server.client, clusters_file)
    assert result.returncode == REFUSED_EXIT, result.stderr
    assert "maxmemory-policy volatile-lru" in result.stderr


def test_worker_warns_and_starts_when_neither_config_nor_info_is_allowed(
    tmp_path: Path, clusters_file: Path
) -> None:
    acl = ("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-config", "-info")
    with redis_server(tmp_path, *NO_PERSISTENCE, *acl) as server:
        result = worker(server.client, clusters_file)
    assert result.returncode == 0, result.stderr
    assert "could not check Redis's maxmemory-policy (CONFIG GET was refused: " in result.stderr
    assert "could not check whether Redis persists its data" in result.stderr
