"""Scenario: the worker is SIGKILLed at random moments of one restore drill (`drbot drill restore`'s
scenario, unchanged); a supervisor starts a new worker each time, as a Deployment would.

Each kill aims at a step drawn at random among the restore's executed steps (each step that is not
idempotent is drawn once for sure, so the unknown-outcome path is always exercised) and lands at a
random moment in its first second. A step that is skipped, or already behind the run, passes the
kill on to the next step that starts. bob, the careful person (chaos/person.py), answers the
unknown-outcome gates; bob also clicks every approval, as in the drill.

The quick variant (`until`) stops short of the whole drill: after a backup and a lost quorum, alice
starts the restore, the kills aim only at the steps before `until`, and alice aborts the run once
`until` starts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from chaos import exactly_once
from chaos.figures import Figure, yes_no
from chaos.person import CarefulPerson
from chaos.scene import Scene, scene
from chaos.workload import take_backup
from drbot.drills import SCENARIOS
from drbot.drills.common import Report, approve_until_done, started_run
from drbot.stage import CHANNEL, twin
from procedures.registry import PROCEDURES
from procedures.steps import Approval, Choice
from workers.journal import STARTED, Journal
from workers.runs import ABORTED, RunStore

log = logging.getLogger(__name__)

NAME = "worker killed"
WAIT_ABORTED = "step.wait_aborted"
MOMENT = 1.0
"""A kill lands this many seconds at most after its step started."""


@dataclass(frozen=True)
class Kill:
    at: float
    aimed_at: str


def targets(rng: random.Random, count: int, until: str | None = None) -> list[str]:
    """`count` steps of the restore (before `until`), in the order the run meets them: every step that
    is not idempotent, and the rest drawn at random among the steps a worker executes."""
    steps = [s for s in PROCEDURES["restore"].steps if not isinstance(s, Approval | Choice)]
    if until is not None:
        steps = steps[: [s.id for s in steps].index(until)]
    chosen = [s.id for s in steps if not s.idempotent][:count]
    chosen += [rng.choice(steps).id for _ in range(count - len(chosen))]
    order = {s.id: i for i, s in enumerate(steps)}
    return sorted(chosen, key=order.__getitem__)


class Killer:
    def __init__(self, current: Scene, aims: list[str], rng: random.Random) -> None:
        self.scene = current
        self.aims = aims
        self.rng = rng
        self.kills: list[Kill] = []
        self.run_id = ""
        self.done = threading.Event()
        """Set once every kill has landed, or the run ended first."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="killer", daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _work(self) -> None:
        try:
            self._kill_all()
        finally:
            self.done.set()

    def _kill_all(self) -> None:
        stage = self.scene.stage
        self.run_id = self._wait(self._restore_run) or ""
        if not self.run_id:
            return
        order = [s.id for s in PROCEDURES["restore"].steps]
        for aim in self.aims:
            since = self.kills[-1].at if self.kills else 0.0

            def started(aim: str = aim, since: float = since) -> str:
                """The step started after the last kill: the aimed one, or the first one after it."""
                run = RunStore(stage.redis()).load(self.run_id)
                for entry in Journal(stage.redis(), self.run_id).entries():
                    if entry["event"] != STARTED or entry["at"] <= since:
                        continue
                    if entry["step"] == aim or (run and run.step_index > order.index(aim)):
                        return str(entry["step"])
                return ""

            if not self._wait(started):
                return
            time.sleep(self.rng.uniform(0, MOMENT))
            workers = stage.live_workers()
            if not workers:
                continue  # the run ended meanwhile, or the last kill's worker is not back yet
            for worker in workers:
                stage.kill_worker(worker)
            self.kills.append(Kill(time.time(), aim))
            log.info("%s: kill %d of %d (aimed at %s)", NAME, len(self.kills), len(self.aims), aim)

    def _restore_run(self) -> str:
        run = self.scene.latest_run("restore")
        return run.id if run else ""

    def _wait(self, found: Callable[[], str]) -> str | None:
        """Poll `found()` until it returns something, the run ends or the scenario stops."""
        while not self._stop.is_set():
            try:
                value = found()
                if value:
                    return value
                if self.run_id:
                    run = RunStore(self.scene.stage.redis()).load(self.run_id)
                    if run is None or run.finished:
                        return None
            except RedisError:
                pass
            time.sleep(0.05)
        return None


def landed_in(current: Scene, run_id: str, kill: Kill) -> tuple[str, bool]:
    """The step whose attempt was under way when the kill landed, and whether it is idempotent."""
    steps = {s.id: s for s in PROCEDURES["restore"].steps}
    entries = [e for e in Journal(current.stage.redis(), run_id).entries() if e["at"] <= kill.at]
    open_step = ""
    for entry in entries:
        if entry["event"] == STARTED:
            open_step = entry["step"]
        elif entry["event"] in ("finished", "skipped") and entry["step"] == open_step:
            open_step = ""
    if not open_step:
        return "between steps", True
    return open_step, steps[open_step].idempotent


def run(kills: int = 20, seed: int | None = None, until: str | None = None) -> list[Figure]:
    rng = random.Random(seed)
    with scene("kills") as current:
        person = CarefulPerson(current.stage)
        report = Report()
        with person, Killer(current, targets(rng, kills, until), rng) as killer, current.quietly():
            try:
                if until is None:
                    SCENARIOS["restore"](current.stage, report)
                else:
                    _restore_until(current, killer, until, report)
            except Exception as error:
                report.failures.append(f"the drill stopped: {error}")
        figures = _figures(current, killer, person, report, kills)
        current.keep = any(f.ok is False for f in figures)
    return figures


def _restore_until(current: Scene, killer: Killer, until: str, report: Report) -> None:
    """Backup, quorum lost, `/dr restore` approved by bob; alice aborts it once the kills are done and
    `until` has started."""
    stage = current.stage
    take_backup(current)
    twin("disaster", "lose-quorum", "--dir", str(stage.directory))
    _, body = stage.slack.slash("U0ALICE", CHANNEL, f"restore {current.cluster.name}")
    run_id = started_run(body)
    runs, journal = RunStore(stage.redis()), Journal(stage.redis(), run_id)

    def reached() -> str:
        run = runs.load(run_id)
        return "ended" if run is None or run.finished else "reached" if journal.entries(until) else ""

    def abort_at_until() -> None:
        killer.done.wait()
        if stage.wait_for(reached, stage.run_timeout, f"{until} to start", 0.2) == "reached":
            stage.slack.slash("U0ALICE", CHANNEL, f"abort {run_id}")

    aborter = threading.Thread(target=abort_at_until, name="alice aborts", daemon=True)
    aborter.start()
    approve_until_done(stage, run_id)
    aborter.join()
    report.check(any(e["event"] == STARTED for e in journal.entries(until)), f"the restore got to {until}")
    run = runs.load(run_id)
    # An abort during a wait cuts the wait short: the run ends failed with "wait aborted".
    stopped = run is not None and (
        run.status == ABORTED or run.result.get("summary", {}).get("key") == WAIT_ABORTED
    )
    report.check(stopped, f"it stopped where alice aborted it ({run.status if run else 'gone'})")


def _figures(
    current: Scene, killer: Killer, person: CarefulPerson, report: Report, planned: int
) -> list[Figure]:
    where = [landed_in(current, killer.run_id, kill) for kill in killer.kills]
    in_risky = [step for step, idempotent in where if not idempotent]
    journal = exactly_once.journal_of(current)
    return [
        Figure(NAME, "kills that landed in the restore run", len(killer.kills), planned),
        Figure(NAME, "drill passed", yes_no(not report.failures), "yes", report.failures + person.errors),
        Figure(NAME, "kills inside a step that is not idempotent", len(in_risky), None, in_risky),
        *exactly_once.figures(NAME, current, journal, killed=len(killer.kills)),
        person.figure(NAME),
    ]
