"""Gates: points where a run waits for a person (an approval, a choice, or a decision about a step
whose outcome is unknown). A gate is a Redis hash under an opaque token; Slack buttons carry only the
token, and every click is checked here against the current run state.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from enum import Enum

from redis import Redis

from workers import keys
from workers.runs import WAITING, Run

APPROVAL = "approval"
CHOICE = "choice"
UNKNOWN_OUTCOME = "unknown_outcome"


@dataclass(frozen=True)
class Gate:
    token: str
    run_id: str
    step: str
    kind: str
    destructive: bool
    attempt: int = 0
    options: list[str] = field(default_factory=list)
    prompt: dict[str, object] = field(default_factory=dict)
    """What the approvers are asked (a catalog message as JSON)."""


class Verdict(Enum):
    ACCEPTED = "accepted"
    STALE = "stale"
    """The gate is gone or the run moved on: the click came from an old message."""
    TAKEN = "taken"
    """Someone else decided first."""
    NOT_APPROVER = "not_approver"
    REQUESTER = "requester"
    """The requester may not approve their own destructive step."""


def new_gate(
    run: Run,
    step: str,
    kind: str,
    destructive: bool,
    attempt: int = 0,
    options: list[str] | None = None,
    prompt: dict[str, object] | None = None,
) -> Gate:
    """A gate with a fresh token; the engine stores it with workers.transitions.open_gate."""
    return Gate(
        secrets.token_urlsafe(16),
        run.id,
        step,
        kind,
        destructive,
        attempt,
        list(options or []),
        dict(prompt or {}),
    )


def gate_fields(gate: Gate) -> dict[str, str]:
    return {
        "run": gate.run_id,
        "step": gate.step,
        "kind": gate.kind,
        "destructive": str(int(gate.destructive)),
        "attempt": str(gate.attempt),
        "options": json.dumps(gate.options),
        "prompt": json.dumps(gate.prompt),
    }


def load_gate(redis: Redis, token: str) -> Gate | None:
    raw = {k.decode(): v.decode() for k, v in redis.hgetall(keys.gate(token)).items()}
    if not raw:
        return None
    return Gate(
        token,
        raw["run"],
        raw["step"],
        raw["kind"],
        raw["destructive"] == "1",
        int(raw["attempt"]),
        json.loads(raw.get("options", "[]")),
        json.loads(raw.get("prompt", "{}")),
    )


ANSWERS = {APPROVAL: ("approve", "reject"), UNKNOWN_OUTCOME: ("rerun", "skip", "reject")}


def check_click(
    gate: Gate | None, run: Run | None, user: str, is_approver: bool, current_step: str | None, value: str
) -> Verdict:
    """Who may decide what, from plain data (the caller loads the gate and the run)."""
    if gate is None or run is None or run.status != WAITING:
        return Verdict.STALE
    if run.gate != gate.token or current_step != gate.step:
        return Verdict.STALE
    allowed = (*gate.options, "reject") if gate.kind == CHOICE else ANSWERS.get(gate.kind, ())
    if value not in allowed:
        return Verdict.STALE
    if gate.kind != CHOICE and not is_approver:
        return Verdict.NOT_APPROVER
    if gate.kind == CHOICE and not (is_approver or user == run.requester):
        return Verdict.NOT_APPROVER
    if gate.destructive and user == run.requester and gate.kind != CHOICE:
        return Verdict.REQUESTER
    return Verdict.ACCEPTED
