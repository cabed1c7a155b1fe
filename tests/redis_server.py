"""Redis servers of a test's own, for tests that stop, pause or reconfigure Redis.

The machine's Redis on 6379 is shared by every other test, so a test that SIGSTOPs Redis, restarts
it or changes its configuration starts its own redis-server on a free 127.0.0.1 port. It is shut
down however the test ends.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
"""As on the machine's Redis; tests turn AOF on where they need it."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    client: Redis

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextmanager
def redis_server(directory: Path, *options: str, port: int | None = None) -> Iterator[RedisServer]:
    """A redis-server of the test's own (on a free port unless one is given), shut down however the
    test ends."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    with (directory / "redis.log").open("wb") as log:
        process = subprocess.Popen([*command, *options], stdout=log, stderr=subprocess.STDOUT)
    client = Redis(host="127.0.0.1", port=port)
    try:
        wait_until_up(client, process)
        yield RedisServer(process, port, client)
    finally:
        client.close()
        process.kill()  # SIGKILL also ends a server the test left stopped (SIGSTOP)
        process.wait()


def wait_until_up(client: Redis, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except RedisConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
