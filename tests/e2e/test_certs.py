"""/dr certs end to end (5.4.3): the twin's kubelet certificates expire, forged CSRs are slipped in, and
approvers click through the Slack simulator → drbot serve → Redis → drbot worker → the twin's API.

Installer-provisioned: the bootstrap wave is approved in Slack, the serving wave by the machine
approver. User-provisioned: both waves are approved in Slack. Either way every node ends Ready and
the forged CSRs stay pending; a non-approver's click and a click on a finished run are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drbot.drills import expired_certs
from drbot.drills.common import Report
from drbot.stage import CHANNEL, Stage

PLATFORMS = {
    "installer-provisioned": "redis://127.0.0.1:6379/8",
    "user-provisioned": "redis://127.0.0.1:6379/9",
}


@pytest.fixture(scope="module", params=sorted(PLATFORMS))
def certs_stage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    platform = request.param
    with Stage(
        tmp_path_factory.mktemp(platform), PLATFORMS[platform], twin_options=("--platform", platform)
    ) as stage:
        yield stage


def test_expired_certificates_are_recovered_through_slack(certs_stage: Stage) -> None:
    report = Report()
    expired_certs.run(certs_stage, report)
    assert report.failures == []
    upi = certs_stage.redis_url == PLATFORMS["user-provisioned"]

    def approvals() -> list[str]:
        return [m.text for m in certs_stage.slack.all_messages(CHANNEL) if "<@U0BOB> approved csr-" in m.text]

    # The thread replies are paced by the outbox (about one a second), so they may still be on their way.
    certs_stage.wait_for(lambda: len(approvals()) >= (10 if upi else 5), 30, "bob's approvals in the thread")
    serving = [text for text in approvals() if "serving certificate" in text]
    assert len(approvals()) - len(serving) == 5, "one bootstrap CSR per node (3 masters, 2 workers)"
    assert len(serving) == (5 if upi else 0)


def test_refused_clicks_get_a_polite_answer(certs_stage: Stage) -> None:
    panel = next(m for m in certs_stage.slack.messages(CHANNEL) if "csr:approve" in str(m.blocks))
    flagged = next(
        e
        for b in panel.blocks
        if b.get("type") == "actions"
        for e in b["elements"]
        if e["action_id"] == "csr:approve_flagged"
    )
    assert "fails a check" in flagged["confirm"]["text"]["text"], "the confirmation names the failed check"
    certs_stage.slack.click("U0MALLORY", panel.ts, "csr:approve_flagged", flagged["value"])
    answers = certs_stage.slack.wait_for(
        lambda: certs_stage.slack.ephemerals(CHANNEL, "U0MALLORY"), timeout=10
    )
    assert "run" in answers[-1].text and (
        "old message" in answers[-1].text or "not an approver" in answers[-1].text
    )
