"""The engine: advance a run step by step, journaling around every side effect.

`advance(run_id)` is what an RQ job runs. It holds the run's lease while it works, stops at gates
(approvals, choices, unknown outcomes) without holding a worker, and ends the run on failure or
abort. It is safe to call twice: a second call finds the lease held or nothing left to do.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping

from redis import Redis

from procedures.clusters import Clusters, ConfigError
from procedures.i18n import msg
from procedures.steps import (
    Approval,
    Call,
    Choice,
    Command,
    Outcome,
    Procedure,
    Step,
    StepFailed,
    WaitUntil,
    all_ok,
)
from workers import events, gates, keys
from workers.context import RunContext
from workers.journal import FINISHED, SKIPPED, STARTED, Journal
from workers.lease import Lease
from workers.pools import PoolCache
from workers.runs import ABORTED, FAILED, RUNNING, SUCCEEDED, WAITING, Run, RunStore
from workers.timeline import Timeline

log = logging.getLogger(__name__)

DRBOT = "drbot"


class Engine:
    def __init__(
        self,
        redis: Redis,
        clusters: Clusters,
        procedures: Mapping[str, Procedure],
        pools: PoolCache,
        lease_seconds: int = 10,
    ) -> None:
        self.redis = redis
        self.clusters = clusters
        self.procedures = procedures
        self.pools = pools
        self.lease_seconds = lease_seconds
        self.runs = RunStore(redis)
        self.timeline = Timeline(redis)

    def advance(self, run_id: str) -> None:
        with Lease(self.redis, run_id, self.lease_seconds) as lease:
            if not lease.held:
                return
            self.redis.delete(keys.wake(run_id))
            run = self.runs.load(run_id)
            if run is None or run.status != RUNNING:
                return
            try:
                self._advance(run)
            except ConfigError as error:
                self._finish(run, FAILED, {"summary": msg("run.config_error", error=str(error)).to_json()})
            finally:
                if run.finished:
                    self.pools.close(run.id)

    def _advance(self, run: Run) -> None:
        procedure = self.procedures[run.procedure]
        cluster = self.clusters.get(run.cluster)
        journal = Journal(self.redis, run.id)
        pool = self.pools.get(run.id)
        while run.step_index < len(procedure.steps):
            if self._abort_requested(run):
                self._finish(run, ABORTED, {"by": run.abort_requested_by})
                return
            step = procedure.steps[run.step_index]
            state, attempts = journal.state(step.id)
            if state in (FINISHED, SKIPPED):
                self._next(run)
                continue
            if state == STARTED and not step.idempotent:
                decision = journal.decision(step.id, attempts)
                if decision is None:
                    self._open_gate(run, step, gates.UNKNOWN_OUTCOME, attempt=attempts)
                    return
                if decision["value"] == "reject":
                    self._finish(run, FAILED, {"step": step.id, "rejected_by": decision["by"]})
                    return
                if decision["value"] == "skip":
                    journal.append(
                        SKIPPED, step.id, reason=msg("step.skipped_by", user=decision["by"]).to_json()
                    )
                    self._next(run)
                    continue
            ctx = RunContext(self.redis, run, cluster, pool, journal, step.id)
            try:
                if not self._run_step(run, step, ctx, journal, attempts):
                    return
            finally:
                ctx.close()
        self._finish(run, SUCCEEDED)

    def _run_step(self, run: Run, step: Step, ctx: RunContext, journal: Journal, attempts: int) -> bool:
        """Run one step; False when the run stops here (a gate opened, or it failed)."""
        skip = step.when(ctx) if step.when else None
        if skip is not None:
            journal.append(SKIPPED, step.id, reason=skip.to_json())
            events.emit(self.redis, events.STEP_SKIPPED, run.id, step=step.id, reason=skip.to_json())
            self._next(run)
            return True
        if isinstance(step, Approval | Choice):
            return self._pass_gate(run, step, ctx, journal)
        journal.append(STARTED, step.id, attempt=attempts + 1)
        events.emit(self.redis, events.STEP_STARTED, run.id, step=step.id)
        self.timeline.append(
            run.channel,
            "step_started",
            DRBOT,
            msg("timeline.step_started", run=run.id, step=step.id),
            run=run.id,
        )
        started = time.monotonic()
        outcome = self._execute(step, ctx)
        run.vars.update(outcome.vars)
        self._record(run, step, journal, outcome, round(time.monotonic() - started, 3))
        if not outcome.ok:
            self._finish(run, FAILED, {"step": step.id, "summary": outcome.summary.to_json()})
            return False
        self._next(run)
        return True

    def _record(self, run: Run, step: Step, journal: Journal, outcome: Outcome, duration: float) -> None:
        journal.append(FINISHED, step.id, ok=outcome.ok, summary=outcome.summary.to_json(), duration=duration)
        events.emit(
            self.redis,
            events.STEP_FINISHED,
            run.id,
            step=step.id,
            ok=outcome.ok,
            summary=outcome.summary.to_json(),
            details=outcome.details,
            duration=duration,
        )
        self.timeline.append(
            run.channel, "step_finished" if outcome.ok else "step_failed", DRBOT, outcome.summary, run=run.id
        )

    def _execute(self, step: Step, ctx: RunContext) -> Outcome:
        try:
            if isinstance(step, Command):
                hosts = step.on.resolve(ctx.cluster, ctx.vars)
                results = ctx.run(
                    hosts, step.render_command(ctx), sudo=step.sudo, timeout=step.timeout, serial=step.serial
                )
                return step.check(ctx, results) if step.check else all_ok(ctx, results, msg("step.ok"))
            if isinstance(step, Call):
                return step.call(ctx)
            if isinstance(step, WaitUntil):
                return self._wait(step, ctx)
            raise TypeError(f"the engine cannot run a {step.kind} step")
        except StepFailed as failure:
            return Outcome(False, failure.summary, failure.details)
        except Exception as error:  # a bug in a step must fail the run visibly, not kill the worker
            log.exception("step %s crashed", step.id)
            return Outcome(
                False,
                msg("step.crashed", error=f"{type(error).__name__}: {error}"),
                traceback.format_exc(limit=5),
            )

    def _wait(self, step: WaitUntil, ctx: RunContext) -> Outcome:
        deadline = time.monotonic() + step.timeout
        while True:
            done, shown = step.condition(ctx)
            if done:
                return Outcome(True, shown)
            if time.monotonic() >= deadline:
                return Outcome(
                    False, msg("step.wait_timed_out", seconds=int(step.timeout), last=shown.to_json())
                )
            if ctx.aborted():
                return Outcome(False, msg("step.wait_aborted"))
            ctx.progress(shown)
            time.sleep(step.interval)

    def _pass_gate(self, run: Run, step: Approval | Choice, ctx: RunContext, journal: Journal) -> bool:
        decision = journal.decision(step.id, 0)
        options = step.options(ctx) if isinstance(step, Choice) else []
        if decision is None and isinstance(step, Choice):
            given = run.params.get(step.var.replace("_", "-"))
            if given is not None and given not in options:
                outcome = Outcome(
                    False, msg("choice.invalid", value=given, options=", ".join(options) or "-")
                )
                self._record(run, step, journal, outcome, 0.0)
                self._finish(run, FAILED, {"step": step.id, "summary": outcome.summary.to_json()})
                return False
            if given is not None or len(options) == 1:
                decision = {"value": given if given is not None else options[0], "by": DRBOT}
        if decision is None:
            self._open_gate(
                run,
                step,
                gates.CHOICE if isinstance(step, Choice) else gates.APPROVAL,
                ctx=ctx,
                options=options,
            )
            return False
        if decision["value"] == "reject":
            self._finish(run, FAILED, {"step": step.id, "rejected_by": decision["by"]})
            return False
        if isinstance(step, Choice):
            run.vars[step.var] = decision["value"]
        journal.append(FINISHED, step.id, ok=True, value=decision["value"], by=decision["by"])
        self._next(run)
        return True

    def _open_gate(
        self,
        run: Run,
        step: Step,
        kind: str,
        *,
        ctx: RunContext | None = None,
        attempt: int = 0,
        options: list[str] | None = None,
    ) -> None:
        prompt = None
        if isinstance(step, Approval) and ctx is not None:
            prompt = step.prompt(ctx)
        elif isinstance(step, Choice):
            prompt = step.prompt
        gate = gates.open_gate(
            self.redis,
            run,
            step.id,
            kind,
            step.destructive,
            attempt,
            options,
            prompt.to_json() if prompt else None,
        )
        run.status = WAITING
        run.gate = gate.token
        self.runs.save(run, "status", "gate", "vars", "step_index")
        events.emit(self.redis, events.GATE_OPENED, run.id, step=step.id, token=gate.token, kind=kind)
        self.timeline.append(
            run.channel,
            "gate_opened",
            DRBOT,
            msg(f"timeline.gate_opened.{kind}", run=run.id, step=step.id),
            run=run.id,
        )

    def _next(self, run: Run) -> None:
        run.step_index += 1
        run.progress = {}
        self.runs.save(run, "step_index", "vars", "progress")

    def _abort_requested(self, run: Run) -> bool:
        fresh = self.runs.load(run.id)
        run.abort_requested_by = fresh.abort_requested_by if fresh else ""
        return bool(run.abort_requested_by)

    def _finish(self, run: Run, status: str, result: dict[str, object] | None = None) -> None:
        self.runs.finish(run, status, result)
        events.emit(self.redis, events.RUN_FINISHED, run.id, status=status)
        self.timeline.append(
            run.channel,
            "run_finished",
            DRBOT,
            msg(f"timeline.run_{status}", run=run.id, procedure=run.procedure, cluster=run.cluster),
            run=run.id,
        )
