"""The manual restore's plan (5.4.2.3) in both languages, and the commands it sends to a host."""

import shlex

from procedures.clusters import parse_clusters
from procedures.manual_restore import PROCEDURE
from procedures.manual_restore_host import move_member_command, restore_command, stop_static_pods_command
from procedures.plan import plan, render_text
from procedures.steps import Command

IMAGE = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "9d28c15860870e85c91d0e36b45f7a6e" * 2

CLUSTER = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod",
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [{"name": f"master-{i}", "address": f"10.0.0.1{i}"} for i in range(3)],
            }
        ]
    }
).get("prod")


def test_nothing_is_written_on_a_host_before_the_start_approval() -> None:
    ids = [step.id for step in PROCEDURE.steps]
    start = ids.index("approve-start")
    assert not any(step.destructive for step in PROCEDURE.steps[:start])
    assert ids[:start] == [
        "probe-hosts",
        "check-recovery-host",
        "choose-recovery-host",
        "check-backup",
        "check-cluster",
        "read-etcd-parameters",
        "generate-uuid",
        "check-snapshot-on-hosts",
    ], "only steps that read; the snapshot copy writes as root, so it comes after the approval"
    assert ids[start + 1 :] == [
        "copy-snapshot",
        "stop-static-pods",
        "save-member-data",
        "restore-snapshot",
        "compare-member-lines",
        "move-restored-member",
        "start-etcd",
        "check-etcd",
        "start-static-pods",
        "restart-kubelet",
        "wipe-ovn-databases",
        "verify-cluster",
    ]


def test_hosts_are_stopped_and_started_one_at_a_time() -> None:
    serial = {s.id for s in PROCEDURE.steps if isinstance(s, Command) and s.serial}
    assert serial == {"stop-static-pods", "start-etcd", "start-static-pods"}


def test_plan_in_english_and_chinese() -> None:
    english = render_text(PROCEDURE, CLUSTER)
    assert english.index("[approve-start]") < english.index("[copy-snapshot]") < english.index("[stop-")
    assert "Control-plane hosts: master-0 (10.0.0.10), master-1 (10.0.0.11), master-2 (10.0.0.12)" in english
    assert (
        "Stop kube-apiserver, kube-controller-manager, kube-scheduler, then etcd (crictl stop leftovers) "
        "[stop-static-pods] — all control-plane hosts, one host at a time — §5.4.2.3 step 3" in english
    )
    chinese = render_text(PROCEDURE, CLUSTER, "zh-CN")
    assert "将 /var/lib/etcd/member 移到 /home/core/assets/old-member-data [save-member-data]" in chinese
    assert [line.section for line in plan(PROCEDURE, "zh-CN")] == [line.section for line in plan(PROCEDURE)]


UUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
SNAPSHOT = "snapshot_2026-11-29_111111.db"


def podman_and_inside(command: str) -> tuple[list[str], list[str]]:
    """The podman line as the host's shell splits it, and the `bash -c` script as bash in the image does."""
    (line,) = [line for line in command.splitlines() if line.startswith("podman run")]
    podman = shlex.split(line)
    return podman, shlex.split(podman[podman.index("-c") + 1])


def test_the_restore_command_uses_the_runbooks_flags_and_the_etcd_image() -> None:
    member = {"name": "master-1", "peer_url": "https://10.0.0.11:2380", "image": IMAGE}
    initial = "master-0=https://10.0.0.10:2380,master-1=https://10.0.0.11:2380"
    command = restore_command(member, initial, UUID, SNAPSHOT, f"/home/core/assets/backup/{SNAPSHOT}")
    assert f"rm -rf /var/lib/etcd/restore-{UUID}" in command
    assert f"cp /home/core/assets/backup/{SNAPSHOT} /var/lib/etcd/" in command
    podman, inside = podman_and_inside(command)
    assert podman[:6] == [
        "podman",
        "run",
        "--rm",
        "--entrypoint=/bin/bash",
        "-v",
        "/var/lib/etcd:/var/lib/etcd:z",
    ]
    assert podman[6] == IMAGE, "the image read and checked before the start approval"
    assert inside[inside.index("snapshot") :] == [
        "snapshot",
        "restore",
        f"/var/lib/etcd/{SNAPSHOT}",
        "--name",
        "master-1",
        f"--initial-cluster={initial}",
        "--initial-cluster-token",
        f"openshift-etcd-{UUID}",
        "--initial-advertise-peer-urls",
        "https://10.0.0.11:2380",
        f"--data-dir=/var/lib/etcd/restore-{UUID}",
        "--skip-hash-check=true",
    ]


def test_every_value_stays_one_word_at_every_shell_it_passes() -> None:
    """Values are checked before they get here; the quoting must hold even for one that was not."""
    hostile = "$(touch /tmp/PWNED);`id`'\""
    member = {"name": hostile, "peer_url": hostile, "image": hostile}
    command = restore_command(member, hostile, hostile, hostile, hostile)
    shell = [shlex.split(line) for line in command.splitlines()[1:3]]
    assert shell == [["rm", "-rf", f"/var/lib/etcd/restore-{hostile}"], ["cp", hostile, "/var/lib/etcd/"]]
    podman, inside = podman_and_inside(command)
    assert podman[6] == hostile
    for flag, value in (("--name", hostile), ("--initial-advertise-peer-urls", hostile)):
        assert inside[inside.index(flag) + 1] == value
    assert f"--initial-cluster={hostile}" in inside and f"openshift-etcd-{hostile}" in inside

    class Ctx:
        def __init__(self) -> None:
            self.vars = {"uuid": hostile, "backup": {"snapshot": hostile}}

    lines = move_member_command(Ctx()).splitlines()  # type: ignore[arg-type]
    removals = [shlex.split(line) for line in lines if line.startswith("rm ")]
    assert removals == [
        ["rm", "-rf", f"/var/lib/etcd/restore-{hostile}"],
        ["rm", "-f", f"/var/lib/etcd/{hostile}"],
    ]


def test_static_pods_stop_in_the_runbooks_order_etcd_last() -> None:
    command = stop_static_pods_command(None)  # type: ignore[arg-type]
    order = [
        command.index(f"mv /etc/kubernetes/manifests/{p}-pod.yaml")
        for p in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
    ]
    assert order == sorted(order)
    assert "crictl ps | grep etcd | grep -E -v 'operator|guard'" in command
    assert "crictl stop $left" in command
