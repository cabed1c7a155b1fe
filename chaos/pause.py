"""Scenario: the suite's redis-server stops answering (SIGSTOP) for twice the lease, once while
cluster-restore.sh runs and once while a slow step runs, during one restore drill with two workers.
The quick variant pauses it once, while cluster-backup.sh runs in the backup drill.

A worker cannot reach Redis then: it must give its lease up by its own clock and stop its step, so
that when Redis answers again the other worker (or itself) resumes the run and no step ever runs on
two workers at once, which the hosts' invocation logs would show. The slow step is the kubelet
restart on the recovery host, made slow by the twin's slow-ssh fault (every SSH session on that host
starts `3 × lease` seconds late, as on an overloaded host).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from chaos import exactly_once, hosts
from chaos.figures import Figure, yes_no
from chaos.journal import JournalTail
from chaos.person import CarefulPerson
from chaos.scene import Scene, scene
from chaos.stall import StallGuard
from drbot.drills import SCENARIOS
from drbot.drills.common import Report
from drbot.stage import twin
from workers.journal import FINISHED, SKIPPED, STARTED
from workers.runs import SUCCEEDED, WAITING, RunStore

log = logging.getLogger(__name__)

NAME = "redis paused"
SLOW_STEP = "restart-kubelet-recovery"
LEASE_LOST = "lease lost"
"""What a worker logs when it gives a run's lease up (workers/lease.py)."""


@dataclass(frozen=True)
class Pause:
    during: str
    at: float
    seconds: float
    running: bool
    """Whether what it aimed at still ran the moment Redis was stopped."""


class Pauser:
    def __init__(self, current: Scene, seconds: float, script: str, slow_ssh: float | None) -> None:
        """Pauses while `script` runs on a host, then (with `slow_ssh`) while the slow step runs."""
        self.scene = current
        self.seconds = seconds
        self.script = script
        self.slow_ssh = slow_ssh
        self.pauses: list[Pause] = []
        self.errors: list[str] = []
        self._tail: JournalTail | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="pauser", daemon=True)

    def __enter__(self) -> Pauser:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _work(self) -> None:
        try:
            self._while_script_runs()
            if self.slow_ssh is not None:
                self._while_slow_step_runs()
        except Exception as error:  # reported with the figures: a pause that did not happen is a finding
            log.exception("the pauser stopped")
            self.errors.append(f"{type(error).__name__}: {error}")

    def _while_script_runs(self) -> None:
        if not self._wait(lambda: bool(self._script_running())):
            return
        self._pause(self.script, lambda: bool(self._script_running()))

    def _script_running(self) -> list[str]:
        return [
            host
            for host, invoked in hosts.logs(self.scene.stage).items()
            if any(i.tool == self.script and i.connection and i.end is None for i in invoked)
        ]

    def _while_slow_step_runs(self) -> None:
        run_id = self._wait(self._restore_run)
        if not run_id or not self._wait(lambda: self._step_ended(run_id, "run-restore-script")):
            return
        recovery = RunStore(self.scene.stage.redis()).load(run_id)
        host = recovery.vars["recovery_host"] if recovery else ""
        directory = str(self.scene.stage.directory)
        twin("fault", "slow-ssh", host, "--delay", f"{self.slow_ssh:g}", "--dir", directory)
        try:
            if self._wait(lambda: self._started(run_id, SLOW_STEP)):
                time.sleep(1.0)  # its SSH session is under way
                self._pause(SLOW_STEP, lambda: not self._step_ended(run_id, SLOW_STEP))
                self._wait(lambda: self._step_ended(run_id, SLOW_STEP))
        finally:
            twin("fault", "fast-ssh", host, "--dir", directory)

    def _pause(self, during: str, still_running: Callable[[], bool]) -> None:
        running, at = still_running(), time.time()
        log.info("%s: redis-server stopped for %.0f s while %s runs", NAME, self.seconds, during)
        self.scene.redis.pause(self.seconds)
        self.pauses.append(Pause(during, at, self.seconds, running))

    def _restore_run(self) -> str:
        run = self.scene.latest_run("restore")
        return run.id if run else ""

    def _entries(self, run_id: str, step: str) -> list[dict[str, Any]]:
        if self._tail is None or self._tail.run_id != run_id:
            self._tail = JournalTail(self.scene.stage.redis(), run_id)
        return [entry for entry in self._tail.read() if entry["step"] == step]

    def _started(self, run_id: str, step: str) -> bool:
        return any(e["event"] == STARTED for e in self._entries(run_id, step))

    def _step_ended(self, run_id: str, step: str) -> bool:
        entries = self._entries(run_id, step)
        return bool(entries) and entries[-1]["event"] in (FINISHED, SKIPPED)

    def _wait(self, found: Callable[[], object]) -> str | None:
        while not self._stop.is_set():
            try:
                value = found()
                if value:
                    return str(value)
            except RedisError:
                pass
            time.sleep(0.05)
        return None


def leases_lost(current: Scene) -> int:
    return sum(log.read_text().count(LEASE_LOST) for log in current.stage.logs.glob("worker-*.log"))


def run(pause_leases: float = 2.0, slow_ssh_leases: float = 3.0, quick: bool = False) -> list[Figure]:
    """Pauses of `pause_leases` × the lease; the slow step's sessions start `slow_ssh_leases` × the
    lease late."""
    drill, script = ("backup", "cluster-backup.sh") if quick else ("restore", "cluster-restore.sh")
    with scene("pause", workers=2) as current:
        lease = current.stage.lease_seconds
        person = CarefulPerson(current.stage)
        report = Report()
        slow = None if quick else slow_ssh_leases * lease
        pauser = Pauser(current, pause_leases * lease, script, slow)
        guard = StallGuard(current, drill)
        with person, guard, pauser, current.quietly():
            try:
                SCENARIOS[drill](current.stage, report)
            except Exception as error:
                report.failures.append(f"the drill stopped: {error}")
        run = current.latest_run(drill)
        ended = run is not None and run.status in (SUCCEEDED, WAITING)
        shown = [f"run {run.id}: {run.status} {run.result}"] if run else [f"no {drill} run"]
        aimed = [
            f"{p.during}: {'ran' if p.running else 'was over'} when Redis stopped" for p in pauser.pauses
        ]
        figures = [
            Figure(
                NAME,
                "pauses while their step ran",
                sum(p.running for p in pauser.pauses),
                1 if quick else 2,
                aimed + pauser.errors,
            ),
            Figure(NAME, "leases given up by workers during the pauses", leases_lost(current)),
            Figure(NAME, f"{drill} run succeeded or waits for a person", yes_no(ended), "yes", shown),
            Figure(NAME, "drill passed", yes_no(not report.failures), None, report.failures + person.errors),
            *exactly_once.figures(NAME, current, exactly_once.journal_of(current)),
            person.figure(NAME),
            guard.figure(NAME),
        ]
        current.keep = any(f.ok is False for f in figures)
    return figures
