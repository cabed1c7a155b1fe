"""Drill: back up etcd (the prerequisite of every restore) through Slack, and find the files on the host."""

from __future__ import annotations

from drbot.drills.common import Report, ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage
from procedures.clusters import load_clusters
from procedures.i18n import t


def run(stage: Stage, report: Report) -> None:
    cluster = load_clusters(stage.config).names()[0]
    with report.phase(f"alice types /dr backup {cluster}"):
        status, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup {cluster}")
        report.check(status == 200, f"/dr backup acknowledged (HTTP {status})")
        final = wait_for_run_end(stage, started_run(body))
        report.check(t("status.succeeded") in final, "the status message says the backup succeeded")
    with report.phase("check the backup on the host over SSH"):
        listing = ssh(stage, "sudo ls -l /home/core/assets/backup")
        report.check(
            "snapshot_" in listing and "static_kuberesources_" in listing,
            "snapshot_<ts>.db and static_kuberesources_<ts>.tar.gz are on the host",
        )
