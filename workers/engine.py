"""The engine: advance a run step by step, journaling around every side effect.

`Engine.advance(run_id)` is what an RQ job runs. It takes the run's lease and acts for the run only
while it holds it: every write goes through a fenced client (workers/fence.py), and when the lease
is lost the in-flight step is stopped (workers/lease.py). It stops at gates (approvals, choices,
unknown outcomes) without holding a worker, and ends the run on failure or abort. It is safe to call
twice: a second call finds the lease held or nothing left to do.

What the journal says decides what happens on resume:
- finished or skipped: not run again;
- started without an end, and not idempotent: a person decides (re-run, skip, stop);
- failed before, and destructive or not idempotent (a retry): someone other than the requester
  approves running it again, shown what happened last time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from procedures.clusters import Clusters, ConfigError
from procedures.i18n import Msg, msg
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
from workers import events, gates, keys, transitions
from workers.context import RunContext
from workers.fence import FencedRedis
from workers.journal import FAILED as STEP_FAILED
from workers.journal import FINISHED, SKIPPED, STARTED, Journal
from workers.lease import Lease, LeaseLost, heartbeat_client
from workers.pools import PoolCache
from workers.redact import redact, redact_value
from workers.runs import ABORTED, FAILED, RETENTION, RUNNING, SUCCEEDED, WAITING, Run, RunStore, fields
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
        lease_seconds: float = 10,
    ) -> None:
        self.redis = redis
        self.clusters = clusters
        self.procedures = procedures
        self.pools = pools
        self.lease_seconds = lease_seconds
        self.heartbeat = heartbeat_client(redis, lease_seconds)
        self.writes = _without_retries(redis)

    def advance(self, run_id: str) -> None:
        with Lease(self.redis, run_id, self.lease_seconds, self.heartbeat) as lease:
            if not lease.held:
                return
            lease.when_lost(lambda: self.pools.interrupt(run_id))
            advancing = _Advance(self, FencedRedis(self.writes, lease), lease)
            try:
                advancing.start(run_id)
            except LeaseLost as lost:
                self.pools.interrupt(run_id)
                log.error("%s; another worker may take the run over, this one stops", lost)
            except RedisError as error:
                # A write whose answer was lost may or may not have been applied: stop here and let
                # the run resume from what the journal says, once Redis answers again.
                self.pools.interrupt(run_id)
                log.error("run %s: Redis failed (%s); the run resumes from its journal later", run_id, error)
            except Exception as error:  # a bug outside a step: the reaper retries with backoff, then fails
                log.exception("run %s: advancing it failed outside a step", run_id)
                advancing.note_error(f"{type(error).__name__}: {error}")
            finally:
                if advancing.run is not None and advancing.run.finished:
                    self.pools.close(run_id)


def _without_retries(redis: Redis) -> Redis:
    """A client over its own pool whose commands are never retried: a retried write could apply twice."""
    pool = redis.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    kwargs.setdefault("socket_timeout", 5.0)
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


class _Advance:
    """One advance of one run, for as long as the lease is held; every write is fenced by it."""

    def __init__(self, engine: Engine, redis: FencedRedis, lease: Lease) -> None:
        self.engine = engine
        self.redis = redis
        self.lease = lease
        self.fence = (lease.key, lease.token)
        self.runs = RunStore(redis)
        self.timeline = Timeline(redis)
        self.run: Run | None = None

    def start(self, run_id: str) -> None:
        self.redis.delete(keys.wake(run_id))
        run = self.run = self.runs.load(run_id)
        if run is None or run.status != RUNNING:
            return
        try:
            self._advance(run)
        except ConfigError as error:
            self._finish(run, FAILED, {"summary": msg("run.config_error", error=str(error)).to_json()})

    def note_error(self, error: str) -> None:
        """Keep why advancing stopped, for the message if the reaper gives up on the run."""
        if self.run is None:
            return
        try:
            self.run.last_error = error[:2000]
            self.runs.save(self.run, "last_error")
        except (RedisError, LeaseLost):
            log.warning("run %s: could not record the error", self.run.id)

    def _advance(self, run: Run) -> None:
        procedure = self.engine.procedures[run.procedure]
        cluster = self.engine.clusters.get(run.cluster)
        journal = Journal(self.redis, run.id)
        pool = self.engine.pools.get(run.id)
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
            if (
                state == STEP_FAILED
                and _needs_second_person(step)
                and not self._retry_approved(run, step, journal, attempts)
            ):
                return
            ctx = RunContext(self.redis, run, cluster, pool, journal, step.id, self.lease)
            try:
                if not self._run_step(run, step, ctx, journal, attempts):
                    return
            finally:
                ctx.close()
        self._finish(run, SUCCEEDED)

    def _retry_approved(self, run: Run, step: Step, journal: Journal, attempts: int) -> bool:
        """A retry runs a destructive or non-idempotent step again only when someone other than the
        requester approves it, shown how it ended last time. False when the run stops here."""
        decision = journal.decision(step.id, attempts)
        if decision is None:
            last = next(
                (e for e in reversed(journal.entries(step.id)) if e["event"] == FINISHED),
                {"summary": msg("step.failed").to_json()},
            )
            prompt = msg("retry.approve", step=step.id, attempts=attempts, last=last["summary"])
            self._open_gate(run, step, gates.APPROVAL, attempt=attempts, prompt=prompt, destructive=True)
            return False
        if decision["value"] == "reject":
            self._finish(run, FAILED, {"step": step.id, "rejected_by": decision["by"]})
            return False
        return True

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
        self.lease.check()
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
        outcome = _redacted(self._execute(step, ctx))
        if not outcome.ok and not step.idempotent and ctx.outcome_unknown:
            # The command may have run, in part or whole: running it again is a person's decision.
            self._open_gate(run, step, gates.UNKNOWN_OUTCOME, attempt=attempts + 1)
            return False
        run.vars.update(outcome.vars)
        if outcome.vars:
            # Before the journal says "finished": a worker that dies in between must not leave a
            # finished step whose results (the pods it deleted, the machines it planned) are lost.
            self.runs.save(run, "vars")
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
        except (LeaseLost, RedisError):
            raise  # not the step's failure: this worker must stop acting for the run
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
            if isinstance(step, Approval):
                self._open_gate(run, step, gates.APPROVAL, prompt=step.prompt(ctx))
            else:
                self._open_gate(run, step, gates.CHOICE, prompt=step.prompt, options=options)
            return False
        if decision["value"] == "reject":
            self._finish(run, FAILED, {"step": step.id, "rejected_by": decision["by"]})
            return False
        if isinstance(step, Choice):
            run.vars[step.var] = decision["value"]
            self.runs.save(run, "vars")
        journal.append(FINISHED, step.id, ok=True, value=decision["value"], by=decision["by"])
        self._next(run)
        return True

    def _open_gate(
        self,
        run: Run,
        step: Step,
        kind: str,
        *,
        attempt: int = 0,
        prompt: Msg | None = None,
        options: list[str] | None = None,
        destructive: bool | None = None,
    ) -> None:
        gate = gates.new_gate(
            run,
            step.id,
            kind,
            step.destructive if destructive is None else destructive,
            attempt,
            options,
            prompt.to_json() if prompt else None,
        )
        run.status, run.gate = WAITING, gate.token
        changed = fields(run, "status", "gate", "vars", "step_index", "progress")
        if not transitions.open_gate(
            self.redis, self.fence, run.id, gate.token, gates.gate_fields(gate), changed, RETENTION
        ):
            # An abort arrived while the step ran: the run stops here instead of waiting.
            run.status, run.gate = RUNNING, ""
            self._abort_requested(run)
            self._finish(run, ABORTED, {"by": run.abort_requested_by})
            return
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
        run.revivals = 0
        self.runs.save(run, "step_index", "vars", "progress", "revivals")

    def _abort_requested(self, run: Run) -> bool:
        fresh = self.runs.load(run.id)
        run.abort_requested_by = fresh.abort_requested_by if fresh else ""
        return bool(run.abort_requested_by)

    def _finish(self, run: Run, status: str, result: dict[str, Any] | None = None) -> None:
        self.runs.finish(run, status, result, lease=self.fence)
        events.emit(self.redis, events.RUN_FINISHED, run.id, status=status)
        self.timeline.append(
            run.channel,
            "run_finished",
            DRBOT,
            msg(f"timeline.run_{status}", run=run.id, procedure=run.procedure, cluster=run.cluster),
            run=run.id,
        )


def _redacted(outcome: Outcome) -> Outcome:
    """The outcome as it may be kept and shown: step code can put secrets in errors and output."""
    summary = Msg.from_json(redact_value(outcome.summary.to_json()))
    return dataclasses.replace(outcome, summary=summary, details=redact(outcome.details))


def _needs_second_person(step: Step) -> bool:
    return not isinstance(step, Approval | Choice) and (step.destructive or not step.idempotent)
