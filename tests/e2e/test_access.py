"""Who may do what, through the real path (Slack simulator → signed HTTP → drbot serve → Redis → worker →
twin): refused starts take no lock and write nothing, paths outside the backup directories are refused,
a replayed signed request is refused, notes never ping, and a cluster's runs are shown only to its
operators and approvers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

from drbot.drills.common import ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, SIGNING_SECRET, Stage
from sim.slack import payloads
from sim.slack.signing import signed_headers
from workers import keys

OTHER_CHANNEL = "C0RANDOM"


def runs_of(stage: Stage) -> list[bytes]:
    return stage.redis().lrange(keys.cluster_runs("twin"), 0, -1)


def host_tmp(stage: Stage) -> str:
    """Every file under the places a mistyped or hostile path would write to, with its change time."""
    return ssh(stage, "sudo find /tmp /home/core/assets -type f -printf '%p %C@\\n' 2>/dev/null | sort")


def timeline_seen_by(stage: Stage, user: str) -> str:
    """What `/dr timeline` shows `user`: the answer, or the file it uploaded when the timeline is long."""
    files_before = len(stage.slack.files)
    _, body = stage.slack.slash(user, CHANNEL, "timeline")
    text = json.loads(body)["text"]
    if "attached as a file" not in text:
        return text
    stage.slack.wait_for(lambda: len(stage.slack.files) > files_before, timeout=20)
    return stage.slack.files[-1].text


def test_refused_starts_take_no_lock_and_write_nothing(stage: Stage) -> None:
    if OTHER_CHANNEL not in stage.slack.workspace.channels:
        stage.slack.add_channel(OTHER_CHANNEL, "random", members=["U0ALICE", "U0MALLORY"])
    before_runs, before_files = runs_of(stage), host_tmp(stage)

    _, body = stage.slack.slash("U0MALLORY", CHANNEL, "restore twin")
    assert "only its operators and approvers may" in body, body
    _, body = stage.slack.slash("U0ALICE", OTHER_CHANNEL, "backup twin")
    assert f"start only in <#{CHANNEL}>" in body, "names the channels where it may start"
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin dir=/tmp")
    assert "`dir=`: `/tmp` is outside the directories backups may use (/home/core/assets/backup)" in body
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "restore twin backup=../x")
    assert "`backup=`: `../x` is not a plain absolute path" in body, body
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin dir=/home/core/assets/backup/../../../tmp")
    assert "not a plain absolute path" in body, body
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "restore twin recovery-host=master-9")
    assert "`master-9` is not a control-plane host of this cluster" in body, body

    assert runs_of(stage) == before_runs, "no run was created"
    assert stage.redis().get(keys.cluster_lock("twin")) is None, "no lock was taken"
    assert host_tmp(stage) == before_files, "nothing was written on the hosts"


def test_a_replayed_signed_request_is_refused(stage: Stage) -> None:
    who = stage.slack.user("U0ALICE")
    form = payloads.slash_command(
        stage.slack.workspace.team_id, who, CHANNEL, "incident-twin", "/dr", "status", "http://127.0.0.1:9/"
    )
    body = urlencode(form)
    headers = signed_headers(SIGNING_SECRET, body, "application/x-www-form-urlencoded")

    def send() -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{stage.port}/slack/events", data=body.encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert send() == 200
    assert send() == 401, "the same signature and timestamp a second time"


def test_notes_never_ping_anyone(stage: Stage) -> None:
    status, body = stage.slack.slash(
        "U0ALICE", CHANNEL, "note paging <!channel> <!here> and <!subteam^S0SRE>"
    )
    assert status == 200
    text = json.loads(body)["text"]
    assert "<!channel>" not in text and "<!here>" not in text and "<!subteam^" not in text
    assert "&lt;!channel&gt;" in text


def test_a_clusters_runs_are_shown_only_to_its_operators_and_approvers(stage: Stage) -> None:
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
    run_id = started_run(body)
    wait_for_run_end(stage, run_id)

    _, mallory_status = stage.slack.slash("U0MALLORY", CHANNEL, "status twin")
    assert "shown only to its operators and approvers" in mallory_status
    assert run_id in timeline_seen_by(stage, "U0ALICE")
    assert run_id not in timeline_seen_by(stage, "U0MALLORY")
    _, mallory_help = stage.slack.slash("U0MALLORY", CHANNEL, "help")
    assert "Clusters: -." in json.loads(mallory_help)["text"]
    _, mallory_plan = stage.slack.slash("U0MALLORY", CHANNEL, "plan restore twin")
    assert "shown only to its operators and approvers" in mallory_plan


def test_unlock_is_for_approvers_and_never_frees_a_live_runs_lock(stage: Stage) -> None:
    _, body = stage.slack.slash("U0MALLORY", CHANNEL, "unlock twin")
    assert "Only an approver of cluster twin may release its lock" in body
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
    run_id = started_run(body)
    _, body = stage.slack.slash("U0BOB", CHANNEL, "unlock twin")
    assert f"held by run `{run_id}`, which is still going" in body
    assert stage.redis().get(keys.cluster_lock("twin")) == run_id.encode()
    wait_for_run_end(stage, run_id)
    _, body = stage.slack.slash("U0BOB", CHANNEL, "unlock twin")
    assert "is not locked" in body, "finishing the run released the lock"
