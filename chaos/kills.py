"""Scenario: the worker is SIGKILLed at random moments of one restore drill (`drbot drill restore`'s
scenario, unchanged); a supervisor starts a new worker each time, as a Deployment would.

Kills are spread over the run: each one aims at a step drawn at random among the next few the run
has not reached (on average the remaining steps divided by the remaining kills), and lands at a
random moment of that step's first second. Each step that is not idempotent is aimed at when the run
comes to it, so the unknown-outcome path is always exercised. bob, the careful person
(chaos/person.py), answers the unknown-outcome gates; bob also clicks every approval, as in the drill.

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
from chaos.journal import JournalTail
from chaos.person import CarefulPerson
from chaos.scene import Scene, scene
from chaos.stall import StallGuard
from chaos.workload import stopped_by_abort, take_backup
from drbot.drills import SCENARIOS
from drbot.drills.common import Report, approve_until_done, started_run
from drbot.stage import CHANNEL, twin
from procedures.registry import PROCEDURES
from procedures.steps import Approval, Choice, Step
from workers.journal import STARTED, Journal
from workers.runs import RunStore

log = logging.getLogger(__name__)

NAME = "worker killed"
MOMENT = 1.0
"""A kill lands this many seconds at most after its step started."""
CLEAR_AT_END = 3
"""The run's last steps are quick checks that end within a kill's moment: kills aim before them, so the
last ones still land while the run goes on."""


@dataclass(frozen=True)
class Kill:
    at: float
    aimed_at: str
    between: str = ""
    """The step whose end the journal had recorded while the run's state still pointed at it: the kill
    fell between the two writes, so what the step set for later steps (its variables) was not saved."""


def executed(until: str | None = None) -> list[Step]:
    """The restore's steps a worker executes (gates wait for people), those before `until` if given."""
    steps = [s for s in PROCEDURES["restore"].steps if not isinstance(s, Approval | Choice)]
    return steps[: [s.id for s in steps].index(until)] if until is not None else steps


class Killer:
    def __init__(self, current: Scene, count: int, rng: random.Random, until: str | None = None) -> None:
        self.scene = current
        self.count = count
        self.rng = rng
        self.steps = [s.id for s in executed(until)][: None if until else -CLEAR_AT_END]
        self.risky = [s.id for s in executed(until) if not s.idempotent]
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
        tail = JournalTail(stage.redis(), self.run_id)
        while len(self.kills) < self.count:
            aim = self._aim(order)
            if not aim:
                return
            since = self.kills[-1].at if self.kills else 0.0

            def started(aim: str = aim, since: float = since) -> str:
                """The step started after the last kill: the aimed one, or the first one after it."""
                run = RunStore(stage.redis()).load(self.run_id)
                for entry in tail.read():
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
                continue  # the last kill's worker is not back yet: aim again
            for worker in workers:
                stage.kill_worker(worker)
            self.kills.append(Kill(time.time(), aim, self._between(tail, order)))
            log.info("%s: kill %d of %d (aimed at %s)", NAME, len(self.kills), self.count, aim)

    def _aim(self, order: list[str]) -> str:
        """A step ahead of the run, so that the kills left spread over the steps left; a step that is not
        idempotent and not yet aimed at comes first when it is on the way."""
        run = RunStore(self.scene.stage.redis()).load(self.run_id)
        if run is None or run.finished:
            return ""
        ahead = [s for s in self.steps if order.index(s) >= run.step_index]
        if not ahead:
            return ""
        # As if one more kill were to come: the last one lands with steps still ahead of it.
        reach = self.rng.uniform(0, 2 * len(ahead) / (self.count - len(self.kills) + 1))
        aim = ahead[min(len(ahead) - 1, int(reach))]
        aimed = {kill.aimed_at for kill in self.kills}
        first_risky = next((s for s in ahead if s in self.risky and s not in aimed), None)
        if first_risky is not None and order.index(first_risky) <= order.index(aim):
            return first_risky
        return aim

    def _between(self, tail: JournalTail, order: list[str]) -> str:
        run = RunStore(self.scene.stage.redis()).load(self.run_id)
        ended = [e for e in tail.read() if e["event"] in ("finished", "skipped")]
        if run is None or not ended or ended[-1]["step"] not in order:
            return ""
        step = ended[-1]["step"]
        return step if run.step_index == order.index(step) else ""

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
        guard = StallGuard(current, "restore")
        with person, guard, Killer(current, kills, rng, until) as killer, current.quietly():
            try:
                if until is None:
                    SCENARIOS["restore"](current.stage, report)
                else:
                    _restore_until(current, killer, until, report)
            except Exception as error:
                report.failures.append(f"the drill stopped: {error}")
        figures = [*_figures(current, killer, person, report, kills), guard.figure(NAME)]
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
    report.check(
        stopped_by_abort(run), f"it stopped where alice aborted it ({run.status if run else 'gone'})"
    )


def _figures(
    current: Scene, killer: Killer, person: CarefulPerson, report: Report, planned: int
) -> list[Figure]:
    where = [(kill, *landed_in(current, killer.run_id, kill)) for kill in killer.kills]
    in_risky = [
        f"aimed at {kill.aimed_at}, landed in {step}" for kill, step, idempotent in where if not idempotent
    ]
    between = [f"{kill.between} (its variables were not saved)" for kill in killer.kills if kill.between]
    journal = exactly_once.journal_of(current)
    restore = current.latest_run("restore")
    why = report.failures + person.errors
    why += [f"restore run {restore.id}: {restore.status} {restore.result}"] if restore else []
    return [
        Figure(NAME, "kills that landed in the restore run", len(killer.kills), planned),
        Figure(NAME, "drill passed", yes_no(not report.failures), "yes", why),
        Figure(NAME, "kills inside a step that is not idempotent", len(in_risky), None, in_risky),
        Figure(NAME, "kills between a step's end and the run's next state", len(between), None, between),
        *exactly_once.figures(NAME, current, journal, killed=len(killer.kills)),
        person.figure(NAME),
    ]
