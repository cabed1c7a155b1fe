"""The figures every fault scenario reports about exactly-once: from the journal of every run on the
scene's cluster, and from the twin's hosts."""

from __future__ import annotations

from chaos import hosts
from chaos.figures import Figure
from chaos.journal import Audit, audit
from chaos.scene import Scene
from workers.runs import RunStore

TOOL_STEPS = {"cluster-restore.sh": "run-restore-script", "cluster-backup.sh": "run-backup"}
"""Host scripts and the step that runs each: a script may not run more often than drbot started it."""


def journal_of(current: Scene) -> Audit:
    redis = current.stage.redis()
    return audit(redis, [run.id for run in RunStore(redis).recent(current.cluster.name)])


QUITTING = "quitting"
"""What RQ logs when an exception ends a worker's loop."""


def workers_quit(name: str, current: Scene, killed: int = 0) -> Figure:
    """Workers that exited without being killed (the supervisor replaced them), with their last words."""
    why = [
        f"{log.name}: {line.strip()[:200]}"
        for log in sorted(current.stage.logs.glob("worker-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if QUITTING in line
    ]
    return Figure(name, "workers that quit without being killed", current.stage.restarts - killed, 0, why)


def not_ended(name: str, journal: Audit) -> Figure:
    return Figure(name, "runs neither finished nor at a gate", len(journal.not_ended), 0, journal.not_ended)


def figures(name: str, current: Scene, journal: Audit, killed: int = 0) -> list[Figure]:
    """`killed`: workers the scenario killed on purpose."""
    overlaps = hosts.overlaps(current.stage)
    extra = []
    for tool, step in TOOL_STEPS.items():
        ran, started = len(hosts.runs_of(current.stage, tool)), journal.started_by_step[step]
        if ran > started:
            extra.append(f"{tool} ran {ran} times on the hosts; drbot started {step} {started} times")
    twice, concurrent = journal.unjustified, [overlap.describe() for overlap in overlaps]
    return [
        workers_quit(name, current, killed),
        Figure(name, "steps run twice without a person's decision (journal)", len(twice), 0, twice),
        Figure(name, "host scripts run more often than drbot started them", len(extra), 0, extra),
        Figure(name, "concurrent executions on the hosts", len(concurrent), 0, concurrent),
        Figure(name, "gates decided more than once", len(journal.decided_twice), 0, journal.decided_twice),
        not_ended(name, journal),
        Figure(name, "unknown-outcome decisions: skip (effect complete)", journal.decisions["skip"]),
        Figure(name, "unknown-outcome decisions: re-run", journal.decisions["rerun"]),
        Figure(name, "idempotent steps resumed after an interruption (by design)", journal.resumed),
    ]
