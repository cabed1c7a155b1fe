"""What each run's journal says happened: every start of a step must be one a person allowed.

A step may start again only when:
- it is idempotent and its last attempt never ended (a worker died or lost its lease): the engine
  resumes it by design (counted as "resumed", not as a fault);
- it is not idempotent and its last attempt never ended, and a person decided "rerun" for that attempt;
- its last attempt failed, and someone approved the retry (destructive or not idempotent steps) or a
  person asked for the retry (`/dr retry`, in the timeline).
Any other start is a step run twice without a person's decision. Gates are audited too: one decision
per gate (step and attempt) at most.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from procedures.registry import PROCEDURES
from procedures.steps import Approval, Choice, Step
from workers import keys
from workers.journal import DECISION, FINISHED, SKIPPED, STARTED, Journal
from workers.runs import FINISHED as ENDED
from workers.runs import WAITING, Run, RunStore
from workers.timeline import Timeline


@dataclass
class Audit:
    runs: int = 0
    unjustified: list[str] = field(default_factory=list)
    """Evidence of each start no person allowed: run, step, the step's journal."""
    resumed: int = 0
    """Idempotent steps started again after an interrupted attempt (by design)."""
    decisions: Counter[str] = field(default_factory=Counter)
    """Decisions at unknown-outcome gates, by value (rerun, skip, reject)."""
    decided_twice: list[str] = field(default_factory=list)
    not_ended: list[str] = field(default_factory=list)
    """Runs neither finished nor waiting at a gate for a person."""
    started_by_step: Counter[str] = field(default_factory=Counter)

    def add(self, other: Audit) -> None:
        self.runs += other.runs
        self.unjustified += other.unjustified
        self.resumed += other.resumed
        self.decisions.update(other.decisions)
        self.decided_twice += other.decided_twice
        self.not_ended += other.not_ended
        self.started_by_step.update(other.started_by_step)


class JournalTail:
    """A run's journal as it grows: each read decodes only what was appended since the last one, so
    watching a run closely costs little (entries carry command output)."""

    def __init__(self, redis: Redis, run_id: str) -> None:
        self.redis = redis
        self.run_id = run_id
        self.key = keys.journal(run_id)
        self.entries: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        self.add(self.redis.lrange(self.key, len(self.entries), -1))
        return self.entries

    def add(self, raw: list[bytes]) -> None:
        """Entries read elsewhere (in a MULTI with other reads) from index len(self.entries) on."""
        self.entries += [json.loads(item) for item in raw]


def audit(redis: Redis, run_ids: list[str]) -> Audit:
    total = Audit()
    store = RunStore(redis)
    for run_id in run_ids:
        run = store.load(run_id)
        if run is None:
            total.not_ended.append(f"run {run_id}: gone from Redis")
            continue
        total.add(audit_run(redis, run))
    return total


def audit_run(redis: Redis, run: Run) -> Audit:
    result = Audit(runs=1)
    entries = Journal(redis, run.id).entries()
    retried_at = [e.at for e in Timeline(redis).entries(run.channel) if e.kind == "retry" and e.run == run.id]
    for step in PROCEDURES[run.procedure].steps:
        if isinstance(step, Approval | Choice):
            continue
        _audit_step(result, run, step, [e for e in entries if e["step"] == step.id], retried_at)
    decided = Counter((e["step"], e.get("attempt")) for e in entries if e["event"] == DECISION)
    for (step_id, attempt), count in decided.items():
        if count > 1:
            result.decided_twice.append(
                f"run {run.id}: gate {step_id} (attempt {attempt}) decided {count} times\n"
                + excerpt([e for e in entries if e["step"] == step_id])
            )
    result.decisions.update(
        e["value"] for e in entries if e["event"] == DECISION and e.get("kind") == "unknown_outcome"
    )
    if run.status not in ENDED and not (run.status == WAITING and run.gate):
        result.not_ended.append(f"run {run.id} ({run.procedure}) is {run.status}, at no gate")
    return result


def _audit_step(
    result: Audit, run: Run, step: Step, mine: list[dict[str, Any]], retried_at: list[float]
) -> None:
    attempts, last, last_at = 0, "", 0.0
    for entry in mine:
        event = entry["event"]
        if event == STARTED:
            result.started_by_step[step.id] += 1
            if attempts and not _allowed(result, step, mine, entry, attempts, last, last_at, retried_at):
                result.unjustified.append(
                    f"run {run.id}: step {step.id} started again (attempt {attempts + 1}) after "
                    f"attempt {attempts} {'never ended' if last == 'open' else last}, "
                    f"with no person's decision\n{excerpt(mine)}"
                )
            attempts, last = attempts + 1, "open"
        elif event == FINISHED:
            last = "finished" if entry.get("ok", True) else "failed"
        elif event == SKIPPED:
            last = "skipped"
        last_at = entry["at"] if event != DECISION else last_at


def _allowed(
    result: Audit,
    step: Step,
    mine: list[dict[str, Any]],
    start: dict[str, Any],
    attempts: int,
    last: str,
    last_at: float,
    retried_at: list[float],
) -> bool:
    def decided(value: str) -> bool:
        return any(
            e["event"] == DECISION and e.get("attempt") == attempts and e["value"] == value
            for e in mine
            if e["at"] <= start["at"]
        )

    if last == "open":
        if step.idempotent:
            result.resumed += 1
            return True
        return decided("rerun")
    if last == "failed":
        if step.destructive or not step.idempotent:
            return decided("approve")
        return any(last_at <= at <= start["at"] for at in retried_at)
    return False  # it had finished or been skipped: nothing may start it again


def excerpt(entries: list[dict[str, Any]]) -> str:
    """A step's journal, one line per entry, as evidence."""
    lines = []
    for entry in entries:
        when = time.strftime("%H:%M:%S", time.localtime(entry["at"])) + f".{int(entry['at'] % 1 * 1000):03d}"
        shown = {k: v for k, v in entry.items() if k in ("attempt", "ok", "value", "by", "kind", "host")}
        extra = " ".join(f"{k}={v}" for k, v in shown.items())
        lines.append(f"    {when} {entry['event']} {entry['step']} {extra}".rstrip())
    return "\n".join(lines)
