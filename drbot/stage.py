"""A stage for drills and end-to-end tests: a twin, the Slack simulator, and real `drbot serve` and
`drbot worker` processes wired to them, everything on loopback.

The stage drives drbot from the outside, as people would: commands and clicks go through the Slack
simulator as signed HTTP, and results are read from what drbot posted and from the twin's hosts
over SSH.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import threading
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
RUN_TIMEOUT = 300.0
"""How long drills wait for a run to end, unless the stage says otherwise (faults make runs longer)."""


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


def _bot_log(replica: int) -> str:
    """The first replica logs to bot.log, as a stage with one bot always has."""
    return f"bot-{replica}" if replica else "bot"


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
        ready_timeout: float = 120.0,
        run_timeout: float = RUN_TIMEOUT,
        workers: int = 1,
        supervise_workers: bool = False,
        bots: int = 1,
    ) -> None:
        """`ready_timeout`: how long `drbot serve` may take to answer (its imports take many seconds on a
        busy 2-core machine). `workers` `drbot worker` processes; with `supervise_workers`, one that dies
        is replaced at once (as a Deployment would). `bots` `drbot serve` replicas on one Redis; the Slack
        simulator sends to the first unless told otherwise (`slack_via`)."""
        self.directory = Path(directory)
        self.redis_url = redis_url
        self.lease_seconds = lease_seconds
        self.keep_twin = keep_twin
        self.start_twin = start_twin
        self.first_address = first_address
        self.ports = [free_port() for _ in range(bots)]
        self.port = self.ports[0]
        self.socket_mode = socket_mode
        self.twin_options = twin_options
        self.ready_timeout = ready_timeout
        self.run_timeout = run_timeout
        self.worker_count = workers
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
        self.bots: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        """Every worker process started, the dead ones included."""
        self.restarts = 0
        """Workers the supervisor started in place of dead ones."""
        self.logs = self.directory / "logs"
        self._twin_started = False
        self._workers_lock = threading.Lock()
        self._supervising = threading.Event()
        self._supervisor: threading.Thread | None = None
        if supervise_workers:
            self._supervisor = threading.Thread(target=self._supervise, name="worker supervisor", daemon=True)

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
        for index, port in enumerate(self.ports):
            self.bots.append(self._spawn(_bot_log(index), "serve", "--port", str(port), *mode))
        self.bot = self.bots[0]
        for _ in range(self.worker_count):
            self.start_worker()
        if self._supervisor is not None:
            self._supervising.set()
            self._supervisor.start()
        self.wait_for(self._ready, timeout=self.ready_timeout, what="drbot serve to answer /readyz")

    def slack_via(self, replica: int) -> SlackSim:
        """The same simulated workspace, delivering commands and clicks to `drbot serve` replica `replica`."""
        view = copy.copy(self.slack)
        view.request_url = f"http://127.0.0.1:{self.ports[replica]}/slack/events"
        return view

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
        with self._workers_lock:
            worker = self._spawn(f"worker-{len(self.workers)}", "worker", "--lease", str(self.lease_seconds))
            self.workers.append(worker)
            return worker

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        with self._workers_lock:
            return [worker for worker in self.workers if worker.poll() is None]

    def _supervise(self) -> None:
        while self._supervising.is_set():
            missing = self.worker_count - len(self.live_workers())
            for _ in range(max(0, missing)):
                if self._supervising.is_set():
                    self.start_worker()
                    self.restarts += 1
            time.sleep(0.1)

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL: the worker gets no chance to clean up, as when a node dies."""
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    def _ready(self) -> bool:
        for index, (bot, port) in enumerate(zip(self.bots, self.ports, strict=True)):
            if bot.poll() is not None:
                log = self.logs / f"{_bot_log(index)}.log"
                raise StageError(f"drbot serve exited ({bot.returncode}); see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                    if response.status != 200:
                        return False
            except OSError:
                return False
        return True

    def down(self) -> None:
        self._supervising.clear()
        if self._supervisor is not None and self._supervisor.is_alive():
            self._supervisor.join()
        for process in [*self.workers, *self.bots]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, *self.bots]:
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
