"""A quick subset of `make chaos` (chaos/), with the same harness and small parameters: three worker
kills in a restore cut short after cluster-restore.sh, one Redis pause while cluster-backup.sh runs,
one abort-vs-approve race with a double click. Every figure must be what it must be.

Each test starts its own twin, redis-server and drbot processes, all torn down however it ends.
"""

from __future__ import annotations

import pytest

from chaos import kills, pause, races
from chaos.figures import Figure, table

pytestmark = [pytest.mark.twin, pytest.mark.timeout(900)]

TWICE = "steps run twice without a person's decision (journal)"
CONCURRENT = "concurrent executions on the hosts"


def assert_figures(figures: list[Figure], measured: set[str]) -> None:
    """Every figure with a required value has it, and the ones the test is about were measured."""
    assert measured <= {f.name for f in figures if f.must is not None}, table(figures)
    wrong = [
        f"{f.name}: {f.value}, must be {f.must}\n  " + "\n  ".join(f.evidence)
        for f in figures
        if f.ok is False
    ]
    assert not wrong, table(figures) + "\n\n" + "\n".join(wrong)


def test_three_kills_in_a_restore_never_run_a_step_twice_without_a_person() -> None:
    figures = kills.run(kills=3, seed=3, until="wait-nodes")
    assert_figures(figures, {"kills that landed in the restore run", TWICE, CONCURRENT})


def test_redis_paused_past_the_lease_during_a_backup_never_runs_it_twice_at_once() -> None:
    assert_figures(pause.run(quick=True), {"pauses while their step ran", TWICE, CONCURRENT})


def test_an_abort_racing_an_approval_and_a_double_click_are_each_decided_once() -> None:
    figures = races.run(races=1)
    assert_figures(
        figures,
        {
            "abort-vs-approve races",
            "double clicks (two users) not decided exactly once",
            "lock not the run's while its step ran",
        },
    )
