"""Scenario: Redis, keeping an append-only file as the chart's does, is restarted (SIGTERM, as when its
pod is rescheduled, then started again on the same file twice the lease later) in the middle of
runs. Each run must finish, and the timeline must lose nothing the journal or Slack say happened.

The first restart comes while cluster-backup.sh runs on a host; the others at a random moment of
the run's first seconds. alice types a note before and after each run.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time

from redis.exceptions import RedisError

from chaos import exactly_once, hosts, timeline_audit
from chaos.figures import Figure
from chaos.scene import Scene, scene
from drbot.drills.common import started_run, wait_for_run_end
from drbot.stage import CHANNEL, StageError
from workers.runs import SUCCEEDED, RunStore

log = logging.getLogger(__name__)

NAME = "redis restarted (AOF)"
EARLY = 3.0
"""Restarts after the first land at a random moment of a run's first EARLY seconds."""


def run(restarts: int = 3, down_leases: float = 2.0, seed: int | None = None) -> list[Figure]:
    """`restarts` runs, each with a restart that leaves Redis down for `down_leases` × the lease."""
    rng = random.Random(seed)
    with scene("aof", aof=True) as current:
        runs: list[str] = []
        downtimes: list[float] = []
        down_for = down_leases * current.stage.lease_seconds
        for index in range(restarts):
            runs.append(_one_run(current, index, rng, down_for, downtimes))
        figures = _figures(current, runs, downtimes)
        current.keep = any(f.ok is False for f in figures)
    return figures


def _one_run(current: Scene, index: int, rng: random.Random, down_for: float, downtimes: list[float]) -> str:
    stage = current.stage
    stage.slack.slash("U0ALICE", CHANNEL, f"note chaos: before run {index + 1} and its Redis restart")
    _, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup {current.cluster.name}")
    run_id = started_run(body)
    if index == 0:
        stage.wait_for(lambda: hosts.runs_of(stage, "cluster-backup.sh"), 120, "cluster-backup.sh to start")
    else:
        time.sleep(rng.uniform(0, EARLY))
    downtimes.append(current.redis.restart(down_for))
    log.info("%s: Redis restarted during run %s (%.1f s without it)", NAME, run_id, downtimes[-1])
    wait_for_run_end(stage, run_id)
    _until_redis_answers(current)
    stage.slack.slash("U0ALICE", CHANNEL, f"note chaos: after run {index + 1}")
    return run_id


def _until_redis_answers(current: Scene) -> None:
    def answers() -> bool:
        try:
            return bool(current.stage.redis().ping())
        except RedisError:
            return False

    current.stage.wait_for(answers, 60, "Redis to answer")


def _figures(current: Scene, run_ids: list[str], downtimes: list[float]) -> list[Figure]:
    redis = current.stage.redis()
    # The last note reaches the timeline through drbot serve; give it the time a person would. What is
    # still missing then is counted below as lost.
    with contextlib.suppress(StageError):
        current.stage.wait_for(
            lambda: (
                not timeline_audit.missing(
                    timeline_audit.recorded(redis, CHANNEL),
                    timeline_audit.from_slack(current.stage, CHANNEL, []),
                )
            ),
            30,
            "the notes to reach the timeline",
        )
    store = RunStore(redis)
    unfinished = [f"run {r}: {_status(store, r)}" for r in run_ids if _status(store, r) != SUCCEEDED]
    expected = timeline_audit.from_journal(redis, run_ids) | timeline_audit.from_slack(
        current.stage, CHANNEL, run_ids
    )
    lost = timeline_audit.missing(timeline_audit.recorded(redis, CHANNEL), expected)
    return [
        Figure(NAME, "restarts in the middle of a run", len(downtimes), len(run_ids)),
        Figure(NAME, "longest time without Redis (s)", max(downtimes, default=0.0)),
        Figure(NAME, "runs that did not succeed", len(unfinished), 0, unfinished),
        Figure(NAME, "timeline events the journal and Slack account for", sum(expected.values())),
        Figure(NAME, "timeline events lost", len(lost), 0, lost),
        *exactly_once.figures(NAME, current, exactly_once.journal_of(current)),
    ]


def _status(store: RunStore, run_id: str) -> str:
    run = store.load(run_id)
    return run.status if run else "gone"
