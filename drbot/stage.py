"""A stage for drills and end-to-end tests: a twin, the Slack simulator, and real `drbot serve` and
`drbot worker` processes wired to them, everything on loopback.

The stage drives drbot from the outside, as people would: commands and clicks go through the Slack
simulator as signed HTTP, and results are read from what drbot posted and from the twin's hosts
over SSH.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from redis import Redis

from sim.slack.driver import SlackSim

T = TypeVar("T")

SIGNING_SECRET = "drill-signing-secret"
BOT_TOKEN = "xoxb-drill-bot-token"
APP_TOKEN = "xapp-drill-app-token"
CHANNEL = "C0TWIN"
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0MALLORY": "mallory"}
"""alice and bob are the twin's approvers; mallory is in the channel but may not approve."""


class StageError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twin(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `drbot twin ...` as a separate process, as an operator would."""
    result = subprocess.run([sys.executable, "-m", "sim.twin", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise StageError(
            f"drbot twin {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
        )
    return result


class Stage:
    """Start with `with Stage(dir, redis_url) as stage:`; everything started is stopped on exit."""

    def __init__(
        self,
        directory: Path,
        redis_url: str,
        *,
        lease_seconds: int = 3,
        keep_twin: bool = False,
        start_twin: bool = True,
        first_address: str | None = None,
        socket_mode: bool = False,
        twin_options: tuple[str, ...] = (),
    ) -> None:
        self.directory = Path(directory)
        self.redis_url = redis_url
        self.lease_seconds = lease_seconds
        self.keep_twin = keep_twin
        self.start_twin = start_twin
        self.first_address = first_address
        self.port = free_port()
        self.socket_mode = socket_mode
        self.twin_options = twin_options
        self.slack = SlackSim(
            None if socket_mode else f"http://127.0.0.1:{self.port}/slack/events",
            mode="socket" if socket_mode else "http",
            app_token=APP_TOKEN,
            signing_secret=SIGNING_SECRET,
            bot_token=BOT_TOKEN,
            users=USERS,
            channels={CHANNEL: "incident-twin"},
        )
        self.bot: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs = self.directory / "logs"
        self._twin_started = False

    @property
    def config(self) -> Path:
        return self.directory / "clusters.yaml"

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DRBOT_CONFIG": str(self.config),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.url,
            "SLACK_APP_TOKEN": APP_TOKEN,
        }

    def __enter__(self) -> Stage:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.down()

    def up(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.start_twin:
            where = ["--first-address", self.first_address] if self.first_address else []
            twin("up", "--dir", str(self.directory), *where, *self.twin_options)
            self._twin_started = True
        if not self.config.exists():
            raise StageError(f"{self.config} does not exist: is a twin running in {self.directory}?")
        self.redis().flushdb()
        self.slack.start()
        mode = ["--socket-mode"] if self.socket_mode else []
        self.bot = self._spawn("bot", "serve", "--port", str(self.port), *mode)
        self.start_worker()
        self.wait_for(self._ready, timeout=20, what="drbot serve to answer /readyz")

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "drbot.cli", *args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self._spawn(f"worker-{len(self.workers)}", "worker", "--lease", str(self.lease_seconds))
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL: the worker gets no chance to clean up, as when a node dies."""
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    def _ready(self) -> bool:
        if self.bot is not None and self.bot.poll() is not None:
            raise StageError(f"drbot serve exited ({self.bot.returncode}); see {self.logs / 'bot.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def down(self) -> None:
        for process in [*self.workers, *([self.bot] if self.bot else [])]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, *([self.bot] if self.bot else [])]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.slack.stop()
        if self._twin_started and not self.keep_twin:
            twin("down", "--dir", str(self.directory), check=False)

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StageError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)
