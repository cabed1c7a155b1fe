"""What people do to runs, whichever way they reach drbot: start, decide at a gate, abort, note.

The bot calls these after it has parsed and validated a Slack request; `drbot` CLI commands and the
tests call them too. Each records itself in the incident timeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis

from procedures.i18n import msg
from procedures.steps import Procedure
from workers import events, gates, transitions
from workers.journal import DECISION, entry
from workers.queue import enqueue_advance
from workers.runs import ABORTED, FAILED, RETENTION, RUNNING, Run, RunStore, new_run_id
from workers.timeline import Timeline


@dataclass(frozen=True)
class Decision:
    verdict: gates.Verdict
    run: Run | None
    gate: gates.Gate | None


class Control:
    def __init__(self, redis: Redis, procedures: Mapping[str, Procedure]) -> None:
        self.redis = redis
        self.procedures = procedures
        self.runs = RunStore(redis)
        self.timeline = Timeline(redis)

    def start(
        self,
        procedure: str,
        cluster: str,
        channel: str,
        requester: str,
        params: dict[str, str] | None = None,
        language: str = "en",
    ) -> Run:
        """Create the run (taking the cluster lock) and queue it; raises runs.ClusterBusy."""
        run = self.runs.create(
            Run(
                id=new_run_id(),
                procedure=procedure,
                cluster=cluster,
                channel=channel,
                requester=requester,
                language=language,
                params=dict(params or {}),
            )
        )
        self.timeline.append(
            channel,
            "run_started",
            requester,
            msg("timeline.run_started", run=run.id, procedure=procedure, cluster=cluster),
            run=run.id,
        )
        events.emit(self.redis, events.RUN_STARTED, run.id)
        enqueue_advance(self.redis, run.id)
        return run

    def decide(self, token: str, user: str, is_approver: bool, value: str) -> Decision:
        """Record a click on a gate after checking it server-side.

        A click from an old message or on a finished run is STALE; nothing changes then. Closing the
        gate, journaling the decision and marking the run running are one step, so an abort that
        races the click either finds the gate closed (the run goes on) or closes it first.
        """
        gate = gates.load_gate(self.redis, token)
        run = self.runs.load(gate.run_id) if gate else None
        current = self.current_step(run) if run else None
        verdict = gates.check_click(gate, run, user, is_approver, current, value)
        if verdict is not gates.Verdict.ACCEPTED or gate is None or run is None:
            return Decision(verdict, run, gate)
        decision = entry(DECISION, gate.step, attempt=gate.attempt, value=value, by=user, kind=gate.kind)
        answer = transitions.decide(self.redis, run.id, token, decision)
        if answer != "ok":
            return Decision(gates.Verdict.TAKEN if answer == "taken" else gates.Verdict.STALE, run, gate)
        kind = "rejection" if value == "reject" else "approval"
        self.timeline.append(
            run.channel,
            kind,
            user,
            msg(f"timeline.{kind}", run=run.id, step=gate.step, value=value),
            run=run.id,
        )
        run.status, run.gate = RUNNING, ""
        events.emit(self.redis, events.GATE_CLOSED, run.id, step=gate.step, token=token, value=value, by=user)
        enqueue_advance(self.redis, run.id)
        return Decision(gates.Verdict.ACCEPTED, run, gate)

    def current_step(self, run: Run) -> str | None:
        steps = self.procedures[run.procedure].steps
        return steps[run.step_index].id if run.step_index < len(steps) else None

    def abort(self, run: Run, user: str) -> str:
        """Stop a run: "aborted" when it stopped now (it waited at a gate, or no worker held it),
        "requested" when a worker holds it (it stops when its current step ends), or "finished"."""
        answer, _ = transitions.abort(self.redis, run.id, run.cluster, user, RETENTION)
        if answer in ("finished", "missing"):
            return "finished"
        self.timeline.append(run.channel, "abort", user, msg("timeline.abort", run=run.id), run=run.id)
        if answer == "aborted":
            events.emit(self.redis, events.RUN_FINISHED, run.id, status=ABORTED)
            self.timeline.append(
                run.channel,
                "run_finished",
                "drbot",
                msg("timeline.run_aborted", run=run.id, procedure=run.procedure, cluster=run.cluster),
                run=run.id,
            )
        return answer

    def retry(self, run: Run, user: str) -> str:
        """Run a failed run again from the step that failed; "retried", or why not ("not_failed",
        "rejected": a rejection is a decision, not a failure, or "busy": another run owns the cluster).

        A step that is destructive or not idempotent is not run again on this say-so alone: the
        engine first asks someone other than the requester to approve it (workers/engine.py).
        """
        if run.status != FAILED:
            return "not_failed"
        if run.result.get("rejected_by"):
            return "rejected"
        answer = self.runs.reopen(run)
        if answer != "ok":
            return answer
        self.timeline.append(
            run.channel,
            "retry",
            user,
            msg("timeline.retry", run=run.id, step=run.result.get("step", "?")),
            run=run.id,
        )
        events.emit(self.redis, events.RUN_RETRIED, run.id, by=user)
        enqueue_advance(self.redis, run.id)
        return "retried"

    def unlock(self, cluster: str, user: str, channel: str = "") -> tuple[str, str]:
        """Release a cluster lock stranded by a finished or vanished run: ("released", run),
        ("alive", run) when its run is still going (abort it instead), or ("free", "").

        Recorded in `channel`'s timeline, or in the run's own channel when none is given (the CLI)."""
        answer, owner = transitions.unlock(self.redis, cluster)
        if answer == "released":
            held_by = self.runs.load(owner)
            incident = channel or (held_by.channel if held_by else "")
            if incident:
                self.timeline.append(
                    incident, "unlock", user, msg("timeline.unlock", cluster=cluster, run=owner), run=owner
                )
        return answer, owner

    def note(self, channel: str, user: str, text: str) -> None:
        self.timeline.append(channel, "note", user, text)
