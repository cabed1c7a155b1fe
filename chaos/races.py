"""Scenario: races made through the Slack simulator with signed requests, by two people at once.

Each race is one `/dr restore` by alice on a healthy twin whose backup is on two hosts:
- double click: drbot asks which host to recover on (a choice alice, who started the run, may make
  too); alice and bob click it at the same instant: the gate must be decided once;
- abort against approval: at the start approval, bob clicks approve while alice types `/dr abort`:
  either the run stops at its gate, or the approved step runs and the run ends after it; the
  cluster lock must be the run's the whole time a step runs.
A watcher reads the cluster lock, the run's state and its journal in one MULTI every few
milliseconds; a step started and not ended while the lock is not its run's is a violation. After a
race the approval won, bob moves back what the aborted restore moved aside (chaos/workload.py).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from typing import Any

from redis import Redis

from chaos import exactly_once
from chaos.figures import Figure
from chaos.journal import JournalTail
from chaos.scene import Scene, scene
from chaos.workload import at_once, copy_backup, put_back_static_pods, stopped_by_abort, take_backup
from drbot.drills.common import APPROVER, gate_message_ts, started_run
from drbot.stage import CHANNEL, StageError
from procedures.registry import PROCEDURES
from procedures.steps import Approval, Choice
from sim.slack.workspace import Message
from workers import keys
from workers.gates import load_gate
from workers.journal import DECISION, STARTED
from workers.runs import ABORTED, WAITING, RunStore

log = logging.getLogger(__name__)

NAME = "races"
REQUESTER = "U0ALICE"
GATE_TIMEOUT = 120.0
SKEW = 0.02
"""alice's abort and bob's click leave at the same instant give or take up to this many seconds (at
random, either first): drbot serves both on one event loop, so whichever it reads first wins, and
a skew this small lets each side win some races."""
APPROVAL_WON = "approval won: its step ran, then the run stopped"
ABORT_WON = "abort won: the run stopped at its gate"
GATES = {s.id for s in PROCEDURES["restore"].steps if isinstance(s, Approval | Choice)}


class LockWatch:
    """Checks, in atomic snapshots, that the lock is the run's whenever one of its steps is under way."""

    def __init__(self, redis: Redis, cluster: str) -> None:
        self.redis = redis
        self.cluster = cluster
        self.snapshots = 0
        self.violations: list[str] = []
        self._tail: JournalTail | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lock watch", daemon=True)

    def watch(self, run_id: str) -> None:
        self._tail = JournalTail(self.redis, run_id)

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.003):
            tail = self._tail
            if tail is None:
                continue
            pipe = self.redis.pipeline(transaction=True)
            pipe.get(keys.cluster_lock(self.cluster))
            pipe.lrange(tail.key, len(tail.entries), -1)
            owner, raw = pipe.execute()
            tail.add(raw)
            self.snapshots += 1
            running = _step_under_way(tail.entries)
            if running and owner != tail.run_id.encode():
                lock = owner.decode() if owner else "free"
                self.violations.append(
                    f"run {tail.run_id}: step {running} under way while the lock was {lock}"
                )


def _step_under_way(entries: list[dict[str, Any]]) -> str:
    """The step the journal says is running: started, and neither finished nor skipped since."""
    under_way = ""
    for entry in entries:
        if entry["step"] in GATES:
            continue
        if entry["event"] == STARTED:
            under_way = entry["step"]
        elif entry["step"] == under_way and entry["event"] in ("finished", "skipped"):
            under_way = ""
    return under_way


def run(races: int = 50, seed: int | None = None) -> list[Figure]:
    rng = random.Random(seed)
    with scene("races") as current:
        first = take_backup(current)
        second = next(h for h in current.cluster.hosts if h.name != first.name)
        copy_backup(current, first, second)
        outcomes: Counter[str] = Counter()
        put_back: list[str] = []
        run_ids: list[str] = []
        with LockWatch(current.stage.redis(), current.cluster.name) as watch:
            for index in range(races):
                run_ids.append(_race(current, watch, outcomes, rng))
                if _decisions(current.stage.redis(), run_ids[-1], "approve-start"):
                    put_back += put_back_static_pods(current)  # the approved step ran
                log.info("%s: race %d of %d: %s", NAME, index + 1, races, dict(outcomes))
        figures = _figures(current, watch, outcomes, run_ids, races, put_back)
        current.keep = any(f.ok is False for f in figures)
    return figures


def _race(current: Scene, watch: LockWatch, outcomes: Counter[str], rng: random.Random) -> str:
    stage = current.stage
    began = time.monotonic()
    _, body = stage.slack.slash(REQUESTER, CHANNEL, f"restore {current.cluster.name}")
    run_id = started_run(body)
    watch.watch(run_id)
    token, message = _gate(current, run_id, "choose-recovery-host")
    chosen = time.monotonic()
    choose = next(b for b in _buttons(message) if b["action_id"].startswith("gate:choose"))
    at_once(
        lambda: stage.slack.click(REQUESTER, message, choose["action_id"], choose["value"]),
        lambda: stage.slack.click(APPROVER, message, choose["action_id"], choose["value"]),
    )
    token, message = _gate(current, run_id, "approve-start")
    raced = time.monotonic()
    late = rng.uniform(-SKEW, SKEW)
    at_once(
        lambda: (
            time.sleep(max(0.0, -late))
            or stage.slack.click(APPROVER, message, "gate:approve", f"{token}|approve")
        ),
        lambda: time.sleep(max(0.0, late)) or stage.slack.slash(REQUESTER, CHANNEL, f"abort {run_id}"),
    )
    runs = RunStore(stage.redis())
    stage.wait_for(lambda: _ended(runs, run_id), GATE_TIMEOUT, f"run {run_id} to end")
    approved = _decisions(stage.redis(), run_id, "approve-start")
    outcomes[APPROVAL_WON if approved else ABORT_WON] += 1
    log.info(
        "%s: run %s: choice gate after %.1f s, start approval %.1f s later, ended %.1f s after the race "
        "(abort %+.3f s after the click): %s",
        NAME,
        run_id,
        chosen - began,
        raced - chosen,
        time.monotonic() - raced,
        late,
        APPROVAL_WON if approved else ABORT_WON,
    )
    if runs.owner_of(current.cluster.name) is not None:
        raise StageError(f"run {run_id} ended but the lock of {current.cluster.name} is still taken")
    return run_id


def _ended(runs: RunStore, run_id: str) -> bool:
    run = runs.load(run_id)
    return run is not None and run.finished


def _decisions(redis: Redis, run_id: str, step: str) -> int:
    journal = [json.loads(item) for item in redis.lrange(keys.journal(run_id), 0, -1)]
    return sum(entry["event"] == DECISION and entry["step"] == step for entry in journal)


def _buttons(message: Message) -> list[dict[str, Any]]:
    return [e for block in message.blocks or [] for e in block.get("elements", []) if "action_id" in e]


def _gate(current: Scene, run_id: str, step: str) -> tuple[str, Message]:
    """The token and Slack message of the gate the run waits at, once it waits at `step`."""
    stage, runs = current.stage, RunStore(current.stage.redis())

    def waiting() -> str:
        run = runs.load(run_id)
        if run is None or run.finished:
            raise StageError(f"run {run_id} ended before the gate {step}: {run.result if run else 'gone'}")
        gate = load_gate(stage.redis(), run.gate) if run.status == WAITING and run.gate else None
        return gate.token if gate is not None and gate.step == step else ""

    token = stage.wait_for(waiting, GATE_TIMEOUT, f"run {run_id} to wait at {step}", interval=0.05)
    ts = stage.wait_for(lambda: gate_message_ts(stage, token), 30, f"the {step} buttons in Slack", 0.05)
    message = next(m for m in stage.slack.all_messages(CHANNEL) if m.ts == ts)
    return token, message


def _figures(
    current: Scene,
    watch: LockWatch,
    outcomes: Counter[str],
    run_ids: list[str],
    races: int,
    put_back: list[str],
) -> list[Figure]:
    redis, runs = current.stage.redis(), RunStore(current.stage.redis())
    journal = exactly_once.journal_of(current)
    clicked = [r for r in run_ids if _decisions(redis, r, "choose-recovery-host") != 1]
    ended = {r: runs.load(r) for r in run_ids}
    not_stopped = [
        f"run {r}: {run.status if run else 'gone'}" for r, run in ended.items() if not stopped_by_abort(run)
    ]
    as_failed = [f"run {r}: {run.result}" for r, run in ended.items() if run and run.status != ABORTED]
    return [
        Figure(NAME, "abort-vs-approve races", outcomes[APPROVAL_WON] + outcomes[ABORT_WON], races),
        Figure(NAME, f"  {APPROVAL_WON}", outcomes[APPROVAL_WON]),
        Figure(NAME, f"  {ABORT_WON}", outcomes[ABORT_WON]),
        Figure(NAME, "race runs an abort did not stop", len(not_stopped), 0, not_stopped),
        Figure(
            NAME,
            "  stopped, but shown as failed (the abort cut a wait short)",
            len(as_failed),
            None,
            as_failed,
        ),
        Figure(NAME, "double clicks (two users) not decided exactly once", len(clicked), 0, clicked),
        Figure(NAME, "gates decided more than once", len(journal.decided_twice), 0, journal.decided_twice),
        Figure(
            NAME, "lock not the run's while its step ran", len(watch.violations), 0, watch.violations[:20]
        ),
        Figure(NAME, "lock snapshots taken", watch.snapshots),
        Figure(NAME, "manifests bob put back after aborted restores", len(put_back)),
        exactly_once.not_ended(NAME, journal),
        exactly_once.workers_quit(NAME, current),
    ]
