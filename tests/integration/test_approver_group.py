"""Approvers from a Slack user group, through the Slack simulator's usergroups.users.list: membership is
cached for reading, but a destructive approval re-reads it at the click, so someone removed from the
group a minute ago cannot approve a restore."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis
from slack_sdk import WebClient

from bot.access import may_approve
from bot.actions import gates as gate_actions
from bot.deps import Deps
from bot.outbox import Outbox
from procedures.clusters import parse_clusters
from procedures.i18n import msg
from procedures.steps import Approval, Procedure
from sim.slack.driver import SlackSim
from workers.engine import Engine
from workers.gates import Verdict
from workers.pools import PoolCache

CLUSTERS = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod",
                "channel": "C0INC",
                "approvers": ["U0ALICE"],
                "approver_group": "S0SRE",
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [{"name": "master-0", "address": "127.0.0.50"}],
            }
        ]
    }
)
PROCEDURES = {
    "gated": Procedure(
        "gated",
        msg("step.ok"),
        "test",
        (Approval(id="go", title=msg("step.ok"), section="test", prompt=lambda ctx: msg("step.ok")),),
    )
}


@pytest.fixture
def slack() -> Iterator[SlackSim]:
    users = {"U0ALICE": "alice", "U0CAROL": "carol"}
    with SlackSim(users=users, channels={"C0INC": "incident"}, usergroups={"S0SRE": ["U0CAROL"]}) as sim:
        yield sim


def click(deps: Deps, user: str, token: str) -> Verdict | None:
    body: dict[str, Any] = {
        "user": {"id": user},
        "channel": {"id": "C0INC"},
        "actions": [{"action_id": "gate:approve", "value": f"{token}|approve"}],
    }
    return gate_actions.click(deps, body)


def test_a_member_removed_from_the_group_cannot_approve_a_destructive_step(
    redis: Redis, slack: SlackSim
) -> None:
    web = WebClient(token=slack.bot_token, base_url=slack.url)
    deps = Deps(redis=redis, clusters=CLUSTERS, procedures=PROCEDURES, outbox=Outbox(redis), web=web)
    cluster = CLUSTERS.get("prod")
    assert may_approve(deps, "U0CAROL", cluster), "carol is in the approver group (and now cached)"

    slack.add_usergroup("S0SRE", [])
    assert may_approve(deps, "U0CAROL", cluster), "reading from the cache"
    assert not may_approve(deps, "U0CAROL", cluster, fresh=True)

    run = deps.control.start("gated", "prod", "C0INC", "U0ALICE")
    Engine(redis, CLUSTERS, PROCEDURES, PoolCache()).advance(run.id)
    token = deps.control.runs.load(run.id).gate
    assert click(deps, "U0CAROL", token) is Verdict.NOT_APPROVER, "the click re-reads the group"
    slack.add_usergroup("S0SRE", ["U0CAROL"])
    assert click(deps, "U0CAROL", token) is Verdict.ACCEPTED
