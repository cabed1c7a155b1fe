"""`/dr restore-manual` (5.4.2.3) end to end: Slack simulator → drbot serve → Redis → a drbot worker → SSH
and the API → the twin. These tests break the twin (lost quorum, stopped etcd), so they have their own
twin and Redis database. They run in order: bad input first, then the drill, then the member gate."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest

from drbot.drills import manual_etcd_restore
from drbot.drills.common import Report, answer_gate, ssh, started_run, wait_for_run_end
from drbot.stage import CHANNEL, Stage
from procedures.clusters import Host, load_clusters
from procedures.manual_restore_parse import ETCD_ENV
from workers.journal import Journal

DB = "redis://127.0.0.1:6379/5"
ODD_PODMAN = """#!/bin/sh
/usr/local/bin/podman.real "$@" 2>&1 | sed 's/"cluster-id":"[0-9a-f]*"/"cluster-id":"0bad"/'
"""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    first = os.environ.get("DRBOT_MANUAL_RESTORE_FIRST_ADDRESS")
    with Stage(tmp_path_factory.mktemp("manual-restore"), DB, first_address=first) as running:
        yield running


def hosts(stage: Stage) -> tuple[Host, ...]:
    return load_clusters(stage.config).get("twin").hosts


def backup(stage: Stage) -> None:
    _, body = stage.slack.slash("U0ALICE", CHANNEL, "backup twin")
    assert "Succeeded" in wait_for_run_end(stage, started_run(body))


def status_of(stage: Stage, run_id: str) -> str:
    """What the run's status message shows (its blocks, where the reason of a failure is)."""
    message = next(m for m in stage.slack.messages(CHANNEL) if f"(run {run_id})" in m.text)
    return json.dumps(message.blocks, ensure_ascii=False)


def untouched(stage: Stage) -> None:
    for host in hosts(stage):
        listing = ssh(stage, "sudo ls /etc/kubernetes/manifests /var/lib/etcd /home/core/assets", host)
        for manifest in ("etcd-pod.yaml", "kube-apiserver-pod.yaml", "kube-scheduler-pod.yaml"):
            assert manifest in listing, (host.name, listing)
        assert "member" in listing and "old-member-data" not in listing, (host.name, listing)


def test_a_host_whose_etcd_env_lacks_its_ip_stops_the_run_before_any_data_moves(stage: Stage) -> None:
    backup(stage)
    broken = hosts(stage)[1]
    key = broken.name.replace(".", "_").replace("-", "_")
    ssh(
        stage, f"sudo cp {ETCD_ENV} /root/etcd.env.orig && sudo sed -i '/NODE_{key}_IP=/d' {ETCD_ENV}", broken
    )
    try:
        _, body = stage.slack.slash("U0ALICE", CHANNEL, "restore-manual twin")
        run_id = started_run(body)
        final = wait_for_run_end(stage, run_id)
    finally:
        ssh(stage, f"sudo mv /root/etcd.env.orig {ETCD_ENV}", broken)
    shown = status_of(stage, run_id)
    assert "Failed" in final and "read-etcd-parameters" in shown
    assert f"etcd-scripts/etcd.env has no NODE_{key}_IP" in shown and "nothing was changed" in shown
    assert Journal(stage.redis(), run_id).state("approve-start")[0] is None, "no approval was even asked"
    untouched(stage)


def test_drill_recovers_three_members_with_the_snapshots_data(stage: Stage) -> None:
    report = Report()
    manual_etcd_restore.run(stage, report)
    assert report.failures == []
    stage.wait_for(
        lambda: any(
            "IS LEADER" in m.text + json.dumps(m.blocks or []) for m in stage.slack.all_messages(CHANNEL)
        ),
        20,
        "the endpoint status table in the run's thread",
    )


def test_differing_member_lines_stop_the_run_before_etcd_starts(stage: Stage) -> None:
    backup(stage)
    odd = hosts(stage)[2]
    for host in hosts(stage):  # an operator moves the previous attempt's data aside first
        ssh(stage, "sudo mv /home/core/assets/old-member-data /home/core/assets/old-member-data.drill", host)
    # master-2's etcdctl reports another cluster id, as a host restoring with other parameters would.
    wrapper = base64.b64encode(ODD_PODMAN.encode()).decode()
    ssh(
        stage,
        "sudo mv /usr/local/bin/podman /usr/local/bin/podman.real && "
        f"echo {wrapper} | base64 -d | sudo tee /usr/local/bin/podman >/dev/null && "
        "sudo chmod +x /usr/local/bin/podman",
        odd,
    )
    try:
        _, body = stage.slack.slash("U0ALICE", CHANNEL, "restore-manual twin")
        run_id = started_run(body)
        answer_gate(stage, run_id, "approve-start", "U0BOB")
        final = wait_for_run_end(stage, run_id)
    finally:
        ssh(stage, "sudo mv /usr/local/bin/podman.real /usr/local/bin/podman", odd)
    shown = status_of(stage, run_id)
    assert "Failed" in final and "did not add the same members" in shown
    assert "cluster 0bad" in shown and odd.name in shown, "the failure shows the differing lines"
    assert Journal(stage.redis(), run_id).state("move-restored-member")[0] is None, "nothing moved into place"
