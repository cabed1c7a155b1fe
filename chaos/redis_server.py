"""The suite's own redis-server, on 127.0.0.1: the scenarios pause it (SIGSTOP) and restart it, which
they must never do to the machine's Redis on 6379 that other tests share.

It is started on a free port in the scenario's directory and killed however the scenario ends; a
restart keeps the port and the directory, so clients reconnect to the same URL and an append-only
file is read back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from redis import Redis

from tests.redis_server import NO_PERSISTENCE, free_port, wait_until_up

AOF = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
"""As the chart's Redis runs (helm/drbot/templates/redis.yaml): an append-only file synced every second."""


class OwnRedis:
    def __init__(self, directory: Path, options: tuple[str, ...] = NO_PERSISTENCE) -> None:
        self.directory = directory
        self.options = ("--maxmemory-policy", "noeviction", *options)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url)

    def __enter__(self) -> OwnRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.start()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.kill()

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            *self.options,
        ]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = self.client()
        try:
            wait_until_up(client, self.process)
        finally:
            client.close()

    def pause(self, seconds: float) -> None:
        """Redis stops answering (a stalled node, a long fork) for `seconds`; connections stay open."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self, down_for: float = 0.0) -> float:
        """Stop Redis as Kubernetes stops a pod (SIGTERM: it writes its append-only file and exits), and
        start it again on the same port and directory `down_for` seconds later (a pod rescheduled);
        returns how long it did not answer."""
        assert self.process is not None
        down = time.monotonic()
        self.process.terminate()
        self.process.wait(timeout=60)
        time.sleep(down_for)
        self.start()
        return time.monotonic() - down

    def kill(self) -> None:
        """SIGKILL also ends a server left stopped by SIGSTOP."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
