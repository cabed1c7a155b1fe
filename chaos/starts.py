"""Scenario: two `/dr restore` of one cluster at the same instant, by alice and bob: through one
`drbot serve`, and through two replicas of it on one Redis (each person's request reaches another
replica, as behind a load balancer). Exactly one run may start each time; the other person is told
the cluster is busy. alice then aborts the run that started, at its first gate.
"""

from __future__ import annotations

import logging
import time

from chaos import exactly_once
from chaos.figures import Figure
from chaos.scene import Scene, scene
from chaos.workload import at_once, take_backup
from drbot.stage import CHANNEL, StageError
from workers.runs import ABORTED, RunStore

log = logging.getLogger(__name__)

NAME = "two starts"
END_TIMEOUT = 120.0


def run(rounds: int = 10) -> list[Figure]:
    with scene("starts", bots=2) as current:
        take_backup(current)
        same, replicas = [], []
        for _ in range(rounds):
            same.append(_round(current, replicas=False))
            replicas.append(_round(current, replicas=True))
        log.info("%s: %d rounds through one bot, %d through two replicas", NAME, len(same), len(replicas))
        journal = exactly_once.journal_of(current)
        figures = [
            Figure(NAME, "rounds through one drbot serve", len(same), rounds),
            Figure(
                NAME,
                "  rounds where not exactly one run started",
                sum(n != 1 for n in same),
                0,
                [f"{n} runs started" for n in same if n != 1],
            ),
            Figure(NAME, "rounds through two drbot serve replicas", len(replicas), rounds),
            Figure(
                NAME,
                "  rounds where not exactly one run started",
                sum(n != 1 for n in replicas),
                0,
                [f"{n} runs started" for n in replicas if n != 1],
            ),
            exactly_once.not_ended(NAME, journal),
            exactly_once.workers_quit(NAME, current),
        ]
        current.keep = any(f.ok is False for f in figures)
    return figures


def _round(current: Scene, replicas: bool) -> int:
    """alice and bob start a restore at once; returns how many runs started. The one that did is
    aborted, and the round waits until the cluster is free again."""
    stage, cluster = current.stage, current.cluster.name
    runs = RunStore(stage.redis())
    before = time.time()
    to_bob = stage.slack_via(1) if replicas else stage.slack
    at_once(
        lambda: stage.slack.slash("U0ALICE", CHANNEL, f"restore {cluster}"),
        lambda: to_bob.slash("U0BOB", CHANNEL, f"restore {cluster}"),
    )
    started = [run for run in runs.recent(cluster) if run.procedure == "restore" and run.created_at >= before]
    for run in started:
        stage.slack.slash("U0ALICE", CHANNEL, f"abort {run.id}")

    def ended() -> bool:
        fresh = [runs.load(run.id) for run in started]
        return all(run is not None and run.status == ABORTED for run in fresh)

    try:
        stage.wait_for(ended, END_TIMEOUT, "the started runs to be aborted", interval=0.2)
    except StageError as error:
        raise StageError(f"{error}: {[(r.id, r.status) for r in started]}") from None
    return len(started)
