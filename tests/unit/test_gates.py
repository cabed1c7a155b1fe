import pytest

from workers.gates import APPROVAL, CHOICE, UNKNOWN_OUTCOME, Gate, Verdict, check_click
from workers.runs import RUNNING, WAITING, Run

RUN = Run(
    id="r1",
    procedure="restore",
    cluster="prod",
    channel="C1",
    requester="U0ALICE",
    status=WAITING,
    gate="tok",
)


def gate(kind: str = APPROVAL, destructive: bool = True, options: list[str] | None = None) -> Gate:
    return Gate("tok", "r1", "start", kind, destructive, options=options or [])


@pytest.mark.parametrize(
    ("user", "is_approver", "value", "expected"),
    [
        ("U0BOB", True, "approve", Verdict.ACCEPTED),
        ("U0BOB", True, "reject", Verdict.ACCEPTED),
        ("U0MALLORY", False, "approve", Verdict.NOT_APPROVER),
        ("U0ALICE", True, "approve", Verdict.REQUESTER),
        ("U0BOB", True, "rerun", Verdict.STALE),
    ],
)
def test_who_may_approve_a_destructive_step(
    user: str, is_approver: bool, value: str, expected: Verdict
) -> None:
    assert check_click(gate(), RUN, user, is_approver, "start", value) is expected


def test_the_requester_may_approve_a_step_that_is_not_destructive() -> None:
    assert check_click(gate(destructive=False), RUN, "U0ALICE", True, "start", "approve") is Verdict.ACCEPTED


def test_clicks_on_gone_gates_finished_runs_or_moved_runs_are_stale() -> None:
    assert check_click(None, RUN, "U0BOB", True, "start", "approve") is Verdict.STALE
    finished = Run(**{**RUN.__dict__, "status": "succeeded"})
    assert check_click(gate(), finished, "U0BOB", True, "start", "approve") is Verdict.STALE
    assert check_click(gate(), RUN, "U0BOB", True, "next-step", "approve") is Verdict.STALE
    running = Run(**{**RUN.__dict__, "status": RUNNING})
    assert check_click(gate(), running, "U0BOB", True, "start", "approve") is Verdict.STALE


def test_a_button_of_an_earlier_gate_of_the_same_step_is_stale() -> None:
    """A retried step opens a new gate for the same step; the old message's button must not decide it."""
    reopened = Run(**{**RUN.__dict__, "gate": "newer-token"})
    assert check_click(gate(), reopened, "U0BOB", True, "start", "approve") is Verdict.STALE


def test_choices_accept_only_offered_options_and_the_requester_may_choose() -> None:
    choice = gate(CHOICE, destructive=False, options=["master-0", "master-1"])
    assert check_click(choice, RUN, "U0ALICE", False, "start", "master-1") is Verdict.ACCEPTED
    assert check_click(choice, RUN, "U0ALICE", False, "start", "master-9") is Verdict.STALE
    assert check_click(choice, RUN, "U0MALLORY", False, "start", "master-1") is Verdict.NOT_APPROVER


def test_unknown_outcome_answers() -> None:
    interrupted = gate(UNKNOWN_OUTCOME, destructive=True)
    for value in ("rerun", "skip", "reject"):
        assert check_click(interrupted, RUN, "U0BOB", True, "start", value) is Verdict.ACCEPTED
    assert check_click(interrupted, RUN, "U0BOB", True, "start", "approve") is Verdict.STALE
