"""The suite's measuring instruments on made-up evidence: each must see the fault it exists to see."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.journal import Audit, _audit_step
from chaos.outbox_audit import compare
from procedures.i18n import msg
from procedures.steps import Call, Outcome
from sim.slack.workspace import Call as SlackCall
from sim.twin import invocations
from workers.runs import Run


def entry(op: str, text: str, slot: str | None = None, channel: str = "C1") -> dict:
    return {"op": op, "channel": channel, "args": {"text": text}, "slot": slot}


def sent(method: str, text: str, ts: str | None = None, status: int = 200) -> SlackCall:
    args = {"channel": "C1", "text": text, **({"ts": ts} if ts else {})}
    return SlackCall(method, args, 0.0, status)


def test_the_outbox_audit_sees_lost_doubled_and_reordered_messages_and_a_stale_final_update() -> None:
    queued = [entry("post", "a"), entry("post", "b"), entry("post", "c"), entry("post", "d")]
    queued += [entry("update", "u1", "s"), entry("update", "u2", "s")]
    calls = [sent("chat.postMessage", "a"), sent("chat.postMessage", "c"), sent("chat.postMessage", "b")]
    calls += [sent("chat.postMessage", "a"), sent("chat.postMessage", "x", status=503)]
    calls += [sent("chat.update", "u2", "1.0"), sent("chat.update", "u1", "1.0")]
    result = compare(queued, calls, {"s": "1.0"})
    assert len(result.lost) == 2
    assert "post 'd' never arrived" in result.lost[0] and result.lost[1].startswith("update of s")
    assert len(result.duplicated) == 1 and "'a'" in result.duplicated[0]
    assert len(result.out_of_order) == 2  # b after c; u1 after u2


def test_the_outbox_audit_accepts_merged_updates_and_a_clean_delivery() -> None:
    queued = [entry("post", "a"), entry("update", "u1", "s"), entry("update", "u2", "s"), entry("post", "b")]
    calls = [sent("chat.postMessage", "a"), sent("chat.postMessage", "b"), sent("chat.update", "u2", "1.0")]
    result = compare(queued, calls, {"s": "1.0"})
    assert (result.lost, result.duplicated, result.out_of_order, result.sent) == ([], [], [], 3)


def journal(*events: tuple[str, dict]) -> list[dict]:
    return [{"at": float(at), "event": event, "step": "s", **data} for at, (event, data) in enumerate(events)]


def audited(idempotent: bool, entries: list[dict]) -> Audit:
    step = Call(id="s", title=msg("step.ok"), section="t", call=lambda ctx: Outcome(True, msg("step.ok")))
    step = Call(**{**step.__dict__, "idempotent": idempotent})
    result = Audit()
    _audit_step(result, Run("r1", "p", "c", "C1", "U1"), step, entries, retried_at=[])
    return result


def test_the_journal_audit_allows_resumes_and_decided_reruns_only() -> None:
    interrupted = journal(
        ("started", {"attempt": 1}), ("started", {"attempt": 2}), ("finished", {"ok": True})
    )
    resumed = audited(True, interrupted)
    assert (resumed.unjustified, resumed.resumed) == ([], 1)
    assert len(audited(False, interrupted).unjustified) == 1, "not idempotent: a person must decide"
    decided = journal(
        ("started", {"attempt": 1}),
        ("decision", {"attempt": 1, "value": "rerun", "kind": "unknown_outcome"}),
        ("started", {"attempt": 2}),
    )
    assert audited(False, decided).unjustified == []
    again = journal(("started", {}), ("finished", {"ok": True}), ("started", {}))
    assert len(audited(True, again).unjustified) == 1, "a finished step never starts again"


def test_the_invocation_log_pairs_only_invocations_of_two_connections_at_once(tmp_path: Path) -> None:
    log = tmp_path / "invocations.log"
    lines = [
        {
            "event": "start",
            "tool": "cluster-restore.sh",
            "pid": 1,
            "at": 10.0,
            "args": [],
            "connection": "w1:1",
        },
        {"event": "start", "tool": "crictl", "pid": 2, "at": 11.0, "args": ["ps"], "connection": "w1:1"},
        {"event": "end", "tool": "crictl", "pid": 2, "at": 11.5, "status": 0},
        {"event": "start", "tool": "crictl", "pid": 3, "at": 12.0, "args": ["ps"], "connection": None},
        {"event": "end", "tool": "cluster-restore.sh", "pid": 1, "at": 13.0, "status": 0},
        {"event": "start", "tool": "systemctl", "pid": 4, "at": 20.0, "args": [], "connection": "w1:1"},
        {"event": "start", "tool": "systemctl", "pid": 5, "at": 25.0, "args": [], "connection": "w2:2"},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = invocations.read(str(log))
    assert [(i.pid, i.end) for i in read] == [(1, 13.0), (2, 11.5), (3, None), (4, None), (5, None)]
    pairs = invocations.overlapping(read, until=30.0)
    assert [(a.pid, b.pid) for a, b in pairs] == [(4, 5)], "pid 4 has no end: it may still run at 25"
