"""`/dr backup` end to end: Slack simulator → signed HTTP → drbot serve → Redis → drbot worker → SSH →
the twin's hosts, and back to Slack."""

from __future__ import annotations

import json
import time

from drbot.drills.common import ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage, twin
from procedures.clusters import load_clusters
from workers.journal import Journal
from workers.runs import RunStore
from workers.timeline import Timeline


def backups_on(stage: Stage, host_index: int = 0) -> list[str]:
    host = load_clusters(stage.config).get("twin").hosts[host_index]
    listing = ssh(stage, "sudo ls /home/core/assets/backup", host)
    return sorted(name for name in listing.split() if name.startswith(("snapshot_", "static_kuberesources_")))


def test_backup_through_slack(stage: Stage) -> None:
    before = backups_on(stage)
    status, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
    assert status == 200
    assert "Starting backup on twin" in json.loads(body)["text"]
    run_id = started_run(body)

    final = wait_for_run_end(stage, run_id)
    assert "Succeeded" in final
    new = sorted(set(backups_on(stage)) - set(before))
    assert len(new) == 2 and new[0].startswith("snapshot_") and new[1].startswith("static_kuberesources_")
    stamp = new[0].removeprefix("snapshot_").removesuffix(".db")
    assert new[1] == f"static_kuberesources_{stamp}.tar.gz", "both files come from the same backup"

    status_message = next(m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text)
    assert new[0] in json.dumps(status_message.blocks), "the status message reports the backup"
    stage.wait_for(
        lambda: any("finished" in m.text for m in stage.slack.thread(CHANNEL, status_message.ts)),
        20,
        "the run's last thread message",
    )
    replies = [m.text for m in stage.slack.thread(CHANNEL, status_message.ts)]
    assert any("Run cluster-backup.sh" in text and "saved the backup" in text for text in replies)
    assert any(new[0] in text for text in replies), "the thread names the snapshot file"
    assert "-----BEGIN" not in "".join(replies), "no key material reaches Slack"

    entries = [e for e in Timeline(stage.redis()).entries(CHANNEL) if e.run in ("", run_id)]
    kinds = [e.kind for e in entries]
    assert kinds.count("step_finished") == 5 and kinds[-1] == "run_finished"
    assert any(e.kind == "command" and e.who == "U0ALICE" and e.text == "/dr backup twin" for e in entries)


def test_a_killed_worker_is_replaced_and_no_finished_step_runs_again(stage: Stage) -> None:
    host = load_clusters(stage.config).get("twin").hosts[0]
    twin("fault", "slow-ssh", host.name, "--delay", "2", "--dir", str(stage.directory))
    redis = stage.redis()
    try:
        _, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup twin host={host.name}")
        run_id = started_run(body)
        journal = Journal(redis, run_id)
        stage.wait_for(lambda: journal.state("run-backup")[0] == "started", 60, "cluster-backup.sh to start")
        stage.kill_worker(stage.workers[-1])
        stage.start_worker()
        final = wait_for_run_end(stage, run_id)
    finally:
        twin("fault", "fast-ssh", host.name, "--dir", str(stage.directory))
    assert "Succeeded" in final
    for step in ("probe-hosts", "read-cluster", "pick-host", "verify-backup"):
        assert journal.state(step) == ("finished", 1), step
    assert journal.state("run-backup") == ("finished", 2), "only the interrupted (idempotent) step ran again"


def test_unsigned_bad_and_stale_requests_get_401(stage: Stage) -> None:
    for signing in ("unsigned", "bad", "stale"):
        status, _ = stage.slack.slash("U0ALICE", CHANNEL, "backup twin", signing=signing)
        assert status == 401, signing
    time.sleep(0.5)
    assert RunStore(stage.redis()).owner_of("twin") is None, "nothing started"


def test_mistakes_get_an_ephemeral_answer_with_the_right_form(stage: Stage) -> None:
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup prod-eats")
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    assert "unknown cluster 'prod-eats'" in answer["text"] and "twin" in answer["text"]
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin hots=master-0")
    assert "`hots=` is not an option" in json.loads(body)["text"]
    assert "/dr backup CLUSTER [host=HOST] [dir=DIR]" in json.loads(body)["text"]
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "restor twin")
    assert "`restor` is not a drbot command" in json.loads(body)["text"]
