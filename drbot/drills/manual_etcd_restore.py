"""Drill: lose etcd quorum and restore it by hand on every host (5.4.2.3), through Slack.

alice takes a backup with `/dr backup`, a marker key is written after it, two of the three members
lose their disks (`drbot twin disaster lose-quorum`), alice types `/dr restore-manual`, bob approves,
and the drill checks over SSH that etcd has three healthy members holding the snapshot's data and
not the marker written after it.
"""

from __future__ import annotations

from drbot.drills.common import Report, answer_gate, ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage, twin
from procedures.clusters import Host, load_clusters
from procedures.i18n import t

BEFORE_KEY = "/drbot-drill/before-backup"
MARKER_KEY = "/drbot-drill/after-backup"


def etcdctl(stage: Stage, args: str, host: Host | None = None) -> str:
    """etcdctl inside the host's etcdctl container, as the runbook runs it (`crictl exec`)."""
    return ssh(
        stage,
        "sudo crictl exec $(sudo crictl ps --label io.kubernetes.container.name=etcdctl -q | head -1) "
        f"etcdctl {args}",
        host,
    )


def run(stage: Stage, report: Report) -> None:
    cluster = load_clusters(stage.config).get(load_clusters(stage.config).names()[0])
    with report.phase(f"alice types /dr backup {cluster.name}"):
        etcdctl(stage, f"put {BEFORE_KEY} in-the-snapshot")
        _, body = stage.slack.slash("U0ALICE", CHANNEL, f"backup {cluster.name}")
        final = wait_for_run_end(stage, started_run(body))
        report.check(t("status.succeeded") in final, "the backup succeeded")
    with report.phase("write a marker after the backup, then lose quorum"):
        etcdctl(stage, f"put {MARKER_KEY} written-after-the-backup")
        report.check("written-after" in etcdctl(stage, f"get {MARKER_KEY}"), "the marker is in etcd")
        twin("disaster", "lose-quorum", "--dir", str(stage.directory))
        health = etcdctl(stage, "endpoint health --cluster")
        report.check("unhealthy" in health or "failed" in health, "etcd has lost quorum")
    with report.phase(f"alice types /dr restore-manual {cluster.name}; bob approves"):
        _, body = stage.slack.slash("U0ALICE", CHANNEL, f"restore-manual {cluster.name}")
        run_id = started_run(body)
        answer_gate(stage, run_id, "approve-start", "U0BOB")
        final = wait_for_run_end(stage, run_id, timeout=600)
        report.check(t("status.succeeded") in final, "the manual restore succeeded")
    with report.phase("check etcd over SSH"):
        status = etcdctl(stage, "endpoint status --cluster -w table")
        report.check(status.count("| https://") == len(cluster.hosts), f"{len(cluster.hosts)} members answer")
        report.check(status.count(" true ") == 1, "one leader")
        report.check("in-the-snapshot" in etcdctl(stage, f"get {BEFORE_KEY}"), "the snapshot's data is there")
        report.check(
            "written-after" not in etcdctl(stage, f"get {MARKER_KEY}"),
            "the marker written after the backup is not",
        )
        kept = ssh(stage, "sudo ls /home/core/assets/old-member-data", cluster.hosts[0])
        report.check("member" in kept, "the survivor's old data is in /home/core/assets/old-member-data")
