"""Exactly once under faults, through real processes: two `drbot worker`-style processes (the real
worker loop, RQ and reaper, with this module's procedures) on a Redis of the test's own, which the
tests pause with SIGSTOP; races between clicks and aborts from separate connections.

Each step execution writes ticks (execution id, time) to a file, so what really ran is counted where
it ran, not read back from the journal.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from procedures.clusters import Host, parse_clusters
from procedures.i18n import Msg, msg
from procedures.steps import Approval, Call, Command, Outcome, Procedure, StepContext, WaitUntil
from tests.conftest import ENGINE_DB
from tests.redis_server import NO_PERSISTENCE, RedisServer, redis_server
from workers import gates, keys
from workers.control import Control
from workers.engine import Engine
from workers.journal import FINISHED, Journal
from workers.pools import PoolCache
from workers.reaper import MAX_REVIVALS, reap
from workers.runs import ABORTED, FAILED, SUCCEEDED, WAITING, Run, RunStore
from workers.worker import run_worker

LEASE = 3.0
CLUSTER = {
    "name": "prod",
    "approvers": ["U0ALICE", "U0BOB"],
    "ssh": {"key": "/k", "known_hosts": "/kh"},
    "hosts": [{"name": "master-0", "address": "127.0.0.50"}],
}
CLUSTERS = parse_clusters({"clusters": [CLUSTER]})
# Spawned worker processes import this module again; the environment hands them the same files.
TICKS = Path(os.environ.setdefault("DRBOT_TEST_TICKS", f"/tmp/drbot-fencing-ticks-{os.getpid()}"))


def tick(ctx: StepContext, step: str) -> None:
    """Record that this execution of `step` is running now."""
    execution = ctx.__dict__.setdefault("test_execution", uuid.uuid4().hex)
    with TICKS.open("a") as ticks:
        ticks.write(f"{step} {execution} {time.time():.6f}\n")


def executions(step: str) -> dict[str, tuple[float, float]]:
    """Each execution of `step`: (first tick, last tick)."""
    spans: dict[str, tuple[float, float]] = {}
    for line in TICKS.read_text().splitlines() if TICKS.exists() else []:
        name, execution, at = line.split()
        if name == step:
            first, last = spans.get(execution, (float(at), float(at)))
            spans[execution] = (min(first, float(at)), max(last, float(at)))
    return spans


def overlapping(spans: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    ordered = sorted(spans.items(), key=lambda item: item[1][0])
    return [(a, b) for (a, (_, a_end)), (b, (b_start, _)) in itertools.pairwise(ordered) if b_start <= a_end]


def at_once(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


_FIRST_TICK: dict[str, float] = {}


def slow_condition(ctx: StepContext) -> tuple[bool, Msg]:
    """An idempotent step that takes 4 s in each execution and checks in every 0.1 s."""
    tick(ctx, "slow")
    started = _FIRST_TICK.setdefault(ctx.__dict__["test_execution"], time.time())
    return time.time() - started >= 4, msg("step.ok")


def dangerous(ctx: StepContext) -> Outcome:
    """A non-idempotent step of 4 s that, like a real step, asks now and then whether to stop."""
    for _ in range(40):
        tick(ctx, "dangerous")
        ctx.aborted()
        time.sleep(0.1)
    return Outcome(True, msg("step.ok"))


def holds_the_lock(ctx: StepContext) -> Outcome:
    """Runs after an approval; records a violation if the cluster lock is not its run's meanwhile."""
    run_id = ctx.run_state.id  # type: ignore[attr-defined]
    redis: Redis = ctx.redis  # type: ignore[attr-defined]
    for _ in range(5):
        tick(ctx, "locked")
        if redis.get(keys.cluster_lock("prod")) != run_id.encode():
            tick(ctx, "violation")
        time.sleep(0.1)
    return Outcome(True, msg("step.ok"))


def fails_first_time(ctx: StepContext) -> Outcome:
    tick(ctx, "flaky")
    if len(executions("flaky")) == 1:
        return Outcome(False, msg("step.failed_on_hosts", hosts="master-0 (exit 1)"))
    return Outcome(True, msg("step.ok"))


def crashes_before_it_starts(ctx: StepContext) -> None:
    raise RuntimeError("a bug in a `when`")


def call(step_id: str, function: Callable[[StepContext], Outcome], **flags: bool) -> Call:
    return Call(id=step_id, title=msg("step.ok"), section="test", call=function, **flags)


def approval(step_id: str) -> Approval:
    return Approval(id=step_id, title=msg("step.ok"), section="test", prompt=lambda ctx: msg("step.ok"))


PROCEDURES = {
    "slow": Procedure(
        "slow",
        msg("step.ok"),
        "test",
        (
            WaitUntil(
                id="slow",
                title=msg("step.ok"),
                section="test",
                condition=slow_condition,
                interval=0.1,
                timeout=60,
            ),
        ),
    ),
    "dangerous": Procedure(
        "dangerous", msg("step.ok"), "test", (call("dangerous", dangerous, idempotent=False),)
    ),
    "approved": Procedure(
        "approved", msg("step.ok"), "test", (approval("go"), call("locked", holds_the_lock))
    ),
    "flaky": Procedure("flaky", msg("step.ok"), "test", (call("flaky", fails_first_time, idempotent=False),)),
    "broken": Procedure(
        "broken",
        msg("step.ok"),
        "test",
        (
            Call(
                id="never",
                title=msg("step.ok"),
                section="test",
                call=dangerous,
                when=crashes_before_it_starts,
            ),
        ),
    ),
}


def _worker(url: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
    run_worker(redis, CLUSTERS, lease_seconds=LEASE, procedures=PROCEDURES)


@pytest.fixture(autouse=True)
def clean_ticks() -> Iterator[None]:
    TICKS.unlink(missing_ok=True)
    _FIRST_TICK.clear()
    yield
    TICKS.unlink(missing_ok=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis", *NO_PERSISTENCE) as running:
        yield running


@pytest.fixture
def workers(server: RedisServer) -> Iterator[list[multiprocessing.process.BaseProcess]]:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(server.url,), daemon=True) for _ in range(2)]
    for process in processes:
        process.start()
    try:
        yield processes
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process.join()


def wait_for(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pause(server: RedisServer, seconds: float) -> None:
    """Redis stops answering (as when its pod is rescheduled) for `seconds`, longer than the lease."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def status_of(redis: Redis, run_id: str) -> str:
    run = RunStore(redis).load(run_id)
    return run.status if run else "missing"


def test_redis_paused_past_the_lease_never_runs_a_step_on_two_workers(
    server: RedisServer, workers: list[multiprocessing.process.BaseProcess]
) -> None:
    control = Control(server.client, PROCEDURES)
    run = control.start("slow", "prod", "C1", "U0ALICE")
    wait_for(lambda: executions("slow"), 90, "the slow step to start")
    pause(server, 2 * LEASE)
    wait_for(lambda: status_of(server.client, run.id) == SUCCEEDED, 90, "the run to finish")

    spans = executions("slow")
    assert len(spans) >= 2, "the worker that lost its lease stopped, and another ran the step again"
    assert overlapping(spans) == [], f"two executions at once: {spans}"
    assert Journal(server.client, run.id).state("slow") == (FINISHED, len(spans))


def test_redis_paused_during_a_non_idempotent_step_leaves_it_to_a_person(
    server: RedisServer, workers: list[multiprocessing.process.BaseProcess]
) -> None:
    control = Control(server.client, PROCEDURES)
    run = control.start("dangerous", "prod", "C1", "U0ALICE")
    wait_for(lambda: executions("dangerous"), 90, "the dangerous step to start")
    pause(server, 2 * LEASE)
    wait_for(lambda: status_of(server.client, run.id) == WAITING, 60, "the unknown-outcome gate")

    waiting = control.runs.load(run.id)
    gate = gates.load_gate(server.client, waiting.gate)
    assert (gate.kind, gate.step, gate.attempt) == (gates.UNKNOWN_OUTCOME, "dangerous", 1)
    time.sleep(1)
    assert len(executions("dangerous")) == 1, "the step never ran a second time on its own"
    first, last = next(iter(executions("dangerous").values()))
    assert last - first < 4, "the worker that lost its lease stopped the step before its end"
    assert control.decide(waiting.gate, "U0BOB", True, "skip").verdict is gates.Verdict.ACCEPTED
    wait_for(lambda: status_of(server.client, run.id) == SUCCEEDED, 60, "the run to finish")
    assert len(executions("dangerous")) == 1


def test_abort_racing_an_approval_never_frees_the_lock_while_the_step_runs(
    server: RedisServer, workers: list[multiprocessing.process.BaseProcess]
) -> None:
    control = Control(server.client, PROCEDURES)
    clicker = Control(Redis.from_url(server.url), PROCEDURES)
    outcomes = []
    for _ in range(10):
        run = control.start("approved", "prod", "C1", "U0ALICE")
        wait_for(lambda run=run: status_of(server.client, run.id) == WAITING, 90, "the approval gate")
        token = control.runs.load(run.id).gate
        click, aborted = at_once(
            lambda token=token: clicker.decide(token, "U0BOB", True, "approve").verdict,
            lambda run=run: control.abort(control.runs.load(run.id), "U0ALICE"),
        )
        wait_for(lambda run=run: control.runs.load(run.id).finished, 60, "the run to end")
        outcomes.append((click, aborted, control.runs.load(run.id).status))
        assert control.runs.owner_of("prod") is None, "a finished run released its lock"
    assert executions("violation") == {}, f"the lock was free while an approved step ran: {outcomes}"
    assert len(executions("locked")) <= 10


def test_double_clicks_and_simultaneous_starts_are_decided_once(redis: Redis) -> None:
    engine = Engine(redis, CLUSTERS, PROCEDURES, PoolCache(), lease_seconds=LEASE)
    controls = [Control(Redis.from_url(ENGINE_DB), PROCEDURES) for _ in range(2)]
    for _ in range(20):
        started = at_once(*(lambda c=c: c.start("approved", "prod", "C1", "U0ALICE") for c in controls))
        runs = [item for item in started if isinstance(item, Run)]
        assert len(runs) == 1, f"exactly one of two simultaneous starts runs: {started}"
        engine.advance(runs[0].id)
        token = controls[0].runs.load(runs[0].id).gate
        verdicts = at_once(
            *(lambda c=c, token=token: c.decide(token, "U0BOB", True, "reject").verdict for c in controls)
        )
        assert sorted(v.value for v in verdicts) in (["accepted", "stale"], ["accepted", "taken"]), verdicts
        engine.advance(runs[0].id)
        assert controls[0].runs.load(runs[0].id).status == FAILED
        decisions = [e for e in Journal(redis, runs[0].id).entries("go") if e["event"] == "decision"]
        assert len(decisions) == 1


def test_a_retry_of_a_non_idempotent_step_needs_someone_else_to_approve(redis: Redis) -> None:
    engine = Engine(redis, CLUSTERS, PROCEDURES, PoolCache(), lease_seconds=LEASE)
    control = Control(redis, PROCEDURES)
    run = control.start("flaky", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    assert control.runs.load(run.id).status == FAILED

    assert control.retry(control.runs.load(run.id), "U0ALICE") == "retried"
    engine.advance(run.id)
    waiting = control.runs.load(run.id)
    assert waiting.status == WAITING and len(executions("flaky")) == 1, (
        "not run again without a second person"
    )
    gate = gates.load_gate(redis, waiting.gate)
    assert (gate.kind, gate.step, gate.destructive) == (gates.APPROVAL, "flaky", True)
    assert gate.prompt["key"] == "retry.approve"
    assert gate.prompt["args"]["last"]["args"] == {"hosts": "master-0 (exit 1)"}, (
        "names what happened last time"
    )
    assert control.decide(waiting.gate, "U0ALICE", True, "approve").verdict is gates.Verdict.REQUESTER
    assert control.decide(waiting.gate, "U0BOB", True, "approve").verdict is gates.Verdict.ACCEPTED
    engine.advance(run.id)
    assert control.runs.load(run.id).status == SUCCEEDED
    assert len(executions("flaky")) == 2


def test_a_run_that_cannot_advance_fails_after_bounded_revivals_and_abort_always_works(redis: Redis) -> None:
    engine = Engine(redis, CLUSTERS, PROCEDURES, PoolCache(), lease_seconds=LEASE)
    control = Control(redis, PROCEDURES)
    run = control.start("broken", "prod", "C1", "U0ALICE")
    later = time.time()
    for revival in range(MAX_REVIVALS):
        engine.advance(run.id)
        assert control.runs.load(run.id).last_error == "RuntimeError: a bug in a `when`"
        assert reap(redis, now=later) == [run.id], f"revival {revival + 1} is queued"
        assert reap(redis, now=later) == [], "one revival at a time"
        redis.delete(keys.wake(run.id))  # as the worker does when it takes the job
        assert reap(redis, now=later) == [], "the next revival waits for its backoff"
        later += 61
    engine.advance(run.id)
    assert reap(redis, now=later) == []
    failed = control.runs.load(run.id)
    assert failed.status == FAILED and failed.result["summary"]["key"] == "run.cannot_advance"
    assert "a bug in a `when`" in failed.result["summary"]["args"]["error"]
    assert control.runs.owner_of("prod") is None
    assert executions("dangerous") == {}

    stuck = control.start("broken", "prod", "C1", "U0ALICE")
    engine.advance(stuck.id)
    assert control.abort(control.runs.load(stuck.id), "U0ALICE") == "aborted", "no worker holds it: stops now"
    assert control.runs.load(stuck.id).status == ABORTED
    assert control.runs.owner_of("prod") is None


def test_a_lost_ssh_connection_during_a_non_idempotent_command_goes_to_a_person(
    redis: Redis, tmp_path: Path
) -> None:
    from tests.sshd_fixture import running_sshd

    lost = Command(
        id="lost",
        title=msg("step.ok"),
        section="test",
        command=lambda ctx: "kill -9 $PPID; sleep 5",
        idempotent=False,
    )
    procedures = {"lost": Procedure("lost", msg("step.ok"), "test", (lost,))}
    with running_sshd("127.0.0.65") as sshd:
        host: Host = sshd.host("master-0")
        cluster = {**CLUSTER, "ssh": {"key": host.key, "known_hosts": host.known_hosts, "user": host.user}}
        cluster["hosts"] = [{"name": "master-0", "address": host.address, "port": host.port}]
        engine = Engine(
            redis, parse_clusters({"clusters": [cluster]}), procedures, PoolCache(), lease_seconds=LEASE
        )
        control = Control(redis, procedures)
        run = control.start("lost", "prod", "C1", "U0ALICE")
        engine.advance(run.id)
    waiting = control.runs.load(run.id)
    assert waiting.status == WAITING, waiting.result
    gate = gates.load_gate(redis, waiting.gate)
    assert (gate.kind, gate.step, gate.attempt) == (gates.UNKNOWN_OUTCOME, "lost", 1)


def test_finished_runs_expire_and_stranded_locks_are_released_only_when_their_run_ended(redis: Redis) -> None:
    engine = Engine(redis, CLUSTERS, PROCEDURES, PoolCache(), lease_seconds=LEASE)
    control = Control(redis, PROCEDURES)
    run = control.start("flaky", "prod", "C1", "U0ALICE")
    assert control.unlock("prod", "U0BOB", "C1") == ("alive", run.id), "a live run keeps its lock"
    engine.advance(run.id)
    assert redis.ttl(keys.run(run.id)) > 0 and redis.ttl(keys.journal(run.id)) > 0
    assert redis.ttl(keys.timeline("C1")) > 0
    assert control.unlock("prod", "U0BOB", "C1") == ("free", "")

    redis.set(keys.cluster_lock("prod"), run.id)  # a lock stranded before this fix, or by hand
    assert control.unlock("prod", "U0BOB", "C1") == ("released", run.id)
    redis.set(keys.cluster_lock("prod"), "r-gone")
    assert control.unlock("prod", "U0BOB", "C1") == ("released", "r-gone")
    assert [e.kind for e in control.timeline.entries("C1")].count("unlock") == 2
