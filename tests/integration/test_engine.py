"""The engine against real Redis: gates, journal, locks, abort and recovery from a killed worker.

These procedures use only Call, WaitUntil, Approval and Choice steps, so no host is needed; SSH
steps are covered end to end in tests/e2e against the twin.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from procedures.clusters import parse_clusters
from procedures.i18n import msg
from procedures.steps import Approval, Call, Choice, Outcome, Procedure, StepContext, WaitUntil
from tests.conftest import ENGINE_DB
from workers import gates, keys
from workers.control import Control
from workers.engine import Engine
from workers.journal import Journal
from workers.pools import PoolCache
from workers.runs import ABORTED, FAILED, SUCCEEDED, WAITING, ClusterBusy

CLUSTERS = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod",
                "approvers": ["U0ALICE", "U0BOB"],
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [
                    {"name": "master-0", "address": "127.0.0.50"},
                    {"name": "master-1", "address": "127.0.0.51"},
                ],
            }
        ]
    }
)
# The spawned "worker" process imports this module again; the environment hands it the same file.
MARKS = Path(os.environ.setdefault("DRBOT_TEST_MARKS", f"/tmp/drbot-engine-marks-{os.getpid()}"))


def mark(name: str) -> Call:
    """A step that records each time it really runs (in a file, so other processes' runs count too)."""

    def call(ctx: StepContext) -> Outcome:
        with MARKS.open("a") as marks:
            marks.write(f"{name}\n")
        return Outcome(True, msg("step.ok"), vars={name: True})

    return Call(id=name, title=msg("step.ok"), section="test", call=call)


def slow(name: str, seconds: float, idempotent: bool) -> Call:
    def call(ctx: StepContext) -> Outcome:
        with MARKS.open("a") as marks:
            marks.write(f"{name}\n")
        time.sleep(seconds)
        return Outcome(True, msg("step.ok"))

    return Call(id=name, title=msg("step.ok"), section="test", call=call, idempotent=idempotent)


def marks() -> list[str]:
    return MARKS.read_text().split() if MARKS.exists() else []


WAIT_COUNTER = {"n": 0}


def ready_on_third_check(ctx: StepContext) -> tuple[bool, object]:
    WAIT_COUNTER["n"] += 1
    return WAIT_COUNTER["n"] >= 3, msg("step.ok")


def fails_first_time(ctx: StepContext) -> Outcome:
    with MARKS.open("a") as marks:
        marks.write("flaky\n")
    if marks_count("flaky") == 1:
        return Outcome(False, msg("step.failed_on_hosts", hosts="master-0 (exit 1)"))
    return Outcome(True, msg("step.ok"))


def leak() -> Outcome:
    raise RuntimeError("cannot log in: MYSQL_ROOT_PASSWORD=hunter2-is-not-a-secret")


def marks_count(name: str) -> int:
    return marks().count(name)


PROCEDURES = {
    "flaky": Procedure(
        "flaky",
        msg("step.ok"),
        "test",
        (
            mark("before"),
            Call(id="flaky", title=msg("step.ok"), section="test", call=fails_first_time),
            mark("after"),
        ),
    ),
    "gated": Procedure(
        "gated",
        msg("step.ok"),
        "test",
        (
            mark("before"),
            Choice(
                id="pick",
                title=msg("step.ok"),
                section="test",
                var="recovery_host",
                prompt=msg("step.ok"),
                options=lambda ctx: [h.name for h in ctx.cluster.hosts],
            ),
            Approval(id="go", title=msg("step.ok"), section="test", prompt=lambda ctx: msg("step.ok")),
            WaitUntil(
                id="settle",
                title=msg("step.ok"),
                section="test",
                condition=ready_on_third_check,
                interval=0.01,
                timeout=5,
            ),
            mark("after"),
        ),
    ),
    "fragile": Procedure(
        "fragile",
        msg("step.ok"),
        "test",
        (
            mark("first"),
            slow("dangerous", 30, idempotent=False),
            mark("last"),
        ),
    ),
    "leaky": Procedure(
        "leaky",
        msg("step.ok"),
        "test",
        (Call(id="leaky", title=msg("step.ok"), section="test", call=lambda ctx: leak()),),
    ),
    "never-done": Procedure(
        "never-done",
        msg("step.ok"),
        "test",
        (
            WaitUntil(
                id="forever",
                title=msg("step.ok"),
                section="test",
                condition=lambda ctx: (False, msg("step.ok")),
                interval=0.01,
                timeout=0.2,
            ),
            mark("unreached"),
        ),
    ),
}


@pytest.fixture(autouse=True)
def clean_marks() -> Iterator[None]:
    MARKS.unlink(missing_ok=True)
    yield
    MARKS.unlink(missing_ok=True)


@pytest.fixture
def engine(redis: Redis) -> Engine:
    return Engine(redis, CLUSTERS, PROCEDURES, PoolCache(), lease_seconds=2)


@pytest.fixture
def control(redis: Redis) -> Control:
    return Control(redis, PROCEDURES)


def test_a_run_pauses_at_gates_without_a_worker_and_resumes_on_clicks(
    engine: Engine, control: Control
) -> None:
    run = control.start("gated", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == WAITING and control.current_step(run) == "pick"
    assert not engine.redis.exists(keys.lease(run.id)), "no worker holds a waiting run"
    choice = gates.load_gate(engine.redis, run.gate)
    assert choice.options == ["master-0", "master-1"]

    assert control.decide(run.gate, "U0MALLORY", False, "master-1").verdict is gates.Verdict.NOT_APPROVER
    assert control.decide(run.gate, "U0ALICE", False, "master-9").verdict is gates.Verdict.STALE
    assert control.decide(run.gate, "U0ALICE", False, "master-1").verdict is gates.Verdict.ACCEPTED
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.vars["recovery_host"] == "master-1"
    assert control.current_step(run) == "go"
    approval = run.gate

    assert control.decide(approval, "U0ALICE", True, "approve").verdict is gates.Verdict.REQUESTER
    assert control.decide(approval, "U0MALLORY", False, "approve").verdict is gates.Verdict.NOT_APPROVER
    assert control.decide(approval, "U0BOB", True, "approve").verdict is gates.Verdict.ACCEPTED
    assert control.decide(approval, "U0BOB", True, "approve").verdict is gates.Verdict.STALE, "double click"
    engine.advance(run.id)

    run = control.runs.load(run.id)
    assert run.status == SUCCEEDED
    assert marks() == ["before", "after"]
    assert control.runs.owner_of("prod") is None, "the cluster lock is released"
    kinds = [entry.kind for entry in control.timeline.entries("C1")]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("approval") == 2


def test_a_preset_choice_is_not_asked_and_a_wrong_one_fails_clearly(engine: Engine, control: Control) -> None:
    run = control.start("gated", "prod", "C1", "U0ALICE", {"recovery-host": "master-0"})
    engine.advance(run.id)
    assert control.runs.load(run.id).vars["recovery_host"] == "master-0"
    control.abort(control.runs.load(run.id), "U0ALICE")

    run = control.start("gated", "prod", "C1", "U0ALICE", {"recovery-host": "master-7"})
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == FAILED
    assert run.result["summary"] == {
        "key": "choice.invalid",
        "args": {"value": "master-7", "options": "master-0, master-1"},
    }


def test_one_run_per_cluster(engine: Engine, control: Control) -> None:
    first = control.start("gated", "prod", "C1", "U0ALICE")
    with pytest.raises(ClusterBusy) as busy:
        control.start("gated", "prod", "C1", "U0BOB")
    assert busy.value.run_id == first.id


def test_abort_while_waiting_stops_at_once_and_old_buttons_go_stale(engine: Engine, control: Control) -> None:
    run = control.start("gated", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    token = control.runs.load(run.id).gate
    control.abort(control.runs.load(run.id), "U0BOB")
    run = control.runs.load(run.id)
    assert run.status == ABORTED and run.result == {"by": "U0BOB"}
    assert control.decide(token, "U0ALICE", False, "master-0").verdict is gates.Verdict.STALE
    assert control.runs.owner_of("prod") is None


def test_a_rejection_ends_the_run(engine: Engine, control: Control) -> None:
    run = control.start("gated", "prod", "C1", "U0ALICE", {"recovery-host": "master-0"})
    engine.advance(run.id)
    control.decide(control.runs.load(run.id).gate, "U0BOB", True, "reject")
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == FAILED and run.result == {"step": "go", "rejected_by": "U0BOB"}
    assert "after" not in marks()


def test_a_bounded_wait_that_never_holds_fails_with_a_message(engine: Engine, control: Control) -> None:
    run = control.start("never-done", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == FAILED
    assert run.result["summary"]["key"] == "step.wait_timed_out"
    assert marks() == []


def _advance_in_child(run_id: str) -> None:
    engine = Engine(Redis.from_url(ENGINE_DB), CLUSTERS, PROCEDURES, PoolCache(), lease_seconds=2)
    engine.advance(run_id)


def test_a_killed_worker_leaves_a_non_idempotent_step_to_a_human(engine: Engine, control: Control) -> None:
    run = control.start("fragile", "prod", "C1", "U0ALICE")
    child = multiprocessing.get_context("spawn").Process(target=_advance_in_child, args=(run.id,))
    child.start()
    try:
        deadline = time.monotonic() + 90  # the child imports drbot first: slow on a busy machine
        while "dangerous" not in marks():
            assert time.monotonic() < deadline, "the child never reached the dangerous step"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    time.sleep(2.5)  # the dead worker's lease expires
    engine.advance(run.id)

    run = control.runs.load(run.id)
    assert run.status == WAITING
    gate = gates.load_gate(engine.redis, run.gate)
    assert (gate.kind, gate.step, gate.attempt) == (gates.UNKNOWN_OUTCOME, "dangerous", 1)
    assert marks() == ["first", "dangerous"], "nothing ran again on its own"

    assert control.decide(run.gate, "U0BOB", True, "skip").verdict is gates.Verdict.ACCEPTED
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == SUCCEEDED
    assert marks() == ["first", "dangerous", "last"]
    journal = Journal(engine.redis, run.id)
    assert journal.state("first") == ("finished", 1)
    assert journal.state("dangerous") == ("skipped", 1)


def test_a_failed_run_is_retried_from_the_failed_step(engine: Engine, control: Control) -> None:
    run = control.start("flaky", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == FAILED and run.result["step"] == "flaky"
    assert control.runs.owner_of("prod") is None

    other = control.start("gated", "prod", "C1", "U0BOB")
    assert control.retry(run, "U0ALICE") == "busy"
    control.abort(control.runs.load(other.id), "U0BOB")
    engine.advance(other.id)

    assert control.retry(run, "U0ALICE") == "retried"
    assert control.retry(control.runs.load(run.id), "U0ALICE") == "not_failed"
    engine.advance(run.id)
    run = control.runs.load(run.id)
    assert run.status == SUCCEEDED
    assert marks() == ["before", "flaky", "flaky", "after"], "the step before the failure did not run again"
    assert Journal(engine.redis, run.id).state("flaky") == ("finished", 2)


def test_a_step_that_crashes_with_a_secret_keeps_it_out_of_the_journal_and_the_run(
    engine: Engine, control: Control
) -> None:
    run = control.start("leaky", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    failed = control.runs.load(run.id)
    assert failed.status == FAILED and "MYSQL_ROOT_PASSWORD" in str(failed.result)
    stored = [str(failed.result), *map(str, Journal(engine.redis, run.id).entries())]
    stored += [str(fields) for _, fields in engine.redis.xrange(keys.events())]
    assert not any("hunter2" in text for text in stored)


def test_a_steps_results_are_stored_before_the_journal_says_it_finished(
    engine: Engine, control: Control
) -> None:
    """A worker killed between the two writes must not leave a finished step whose results are lost
    (the chaos suite's worker kills found a restore waiting on pods it no longer knew). Redis's
    MONITOR shows the order in which the writes reach it."""
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with Redis.from_url(ENGINE_DB).monitor() as monitor:
            for command in monitor.listen():
                seen.append(command["command"])
                if stop.is_set():
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.2)
    run = control.start("flaky", "prod", "C1", "U0ALICE")
    engine.advance(run.id)
    stop.set()
    engine.redis.ping()
    watcher.join(timeout=5)
    finished = next(i for i, c in enumerate(seen) if '"event": "finished", "step": "before"' in c)
    saved = next(i for i, c in enumerate(seen) if "HSET" in c and '"before": true' in c)
    assert saved < finished, "the step's vars reach Redis before its 'finished' entry"
