"""A scene for one scenario: a directory of its own, the suite's own redis-server and a drbot Stage
(twin, Slack simulator, `drbot serve`, `drbot worker`) on it; everything is torn down however the
scenario ends.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.redis_server import AOF, OwnRedis
from drbot.stage import Stage
from procedures.clusters import Cluster, load_clusters
from tests.redis_server import NO_PERSISTENCE
from workers.runs import Run, RunStore

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
"""drbot serve takes 5–10 s to import on a busy 2-core machine; a scenario must not fail on that."""
INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
RUN_TIMEOUT = 1200.0
"""Faults make runs much longer than a drill's five minutes (each worker kill costs a lease and a start)."""


@dataclass
class Scene:
    name: str
    directory: Path
    stage: Stage
    redis: OwnRedis
    keep: bool = False
    """Set when a figure is not what it must be: the directory stays, as evidence."""

    @property
    def cluster(self) -> Cluster:
        clusters = load_clusters(self.stage.config)
        return clusters.get(clusters.names()[0])

    def latest_run(self, procedure: str) -> Run | None:
        """The newest run of `procedure` on the scene's cluster."""
        runs = RunStore(self.stage.redis()).recent(self.cluster.name)
        return next((run for run in runs if run.procedure == procedure), None)

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """What a drill prints goes to the scene's drill.log, not into the suite's table."""
        with (self.directory / "drill.log").open("a") as out, redirect_stdout(out):
            yield


@contextmanager
def scene(name: str, aof: bool = False, **stage_options: Any) -> Iterator[Scene]:
    """Yields a running scene; `aof`: Redis keeps an append-only file, as the chart's does. The scene's
    directory (the logs of every process) is removed unless the scenario raised or set `keep`."""
    directory = Path(tempfile.mkdtemp(prefix=f"drbot-chaos-{name}-"))
    log.info("%s: twin, redis-server and drbot in %s", name, directory)
    # Workers are supervised as a Deployment would: one that exits is replaced (and counted).
    options = {
        "ready_timeout": READY_TIMEOUT,
        "run_timeout": RUN_TIMEOUT,
        "supervise_workers": True,
        **stage_options,
    }
    torn_down = ExitStack()
    try:
        redis = torn_down.enter_context(OwnRedis(directory / "redis", AOF if aof else NO_PERSISTENCE))
        stage = torn_down.enter_context(Stage(directory / "twin", redis.url, **options))
        current = Scene(name, directory, stage, redis)
        yield current
    except BaseException:
        log.error("%s: stopped; its logs stay in %s", name, directory)
        raise
    finally:
        with _interrupts_postponed():
            torn_down.close()
    if current.keep:
        log.warning("%s: a figure is not what it must be; its logs stay in %s", name, directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _interrupts_postponed() -> Iterator[None]:
    """An interrupt must not cut a tear-down short (no twin, process or mount may be left behind): one
    that comes meanwhile is raised once the tear-down is done."""
    came: list[int] = []
    previous = {number: signal.signal(number, lambda got, frame: came.append(got)) for number in INTERRUPTS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if came:
        raise KeyboardInterrupt(f"signal {came[0]} during the tear-down")
