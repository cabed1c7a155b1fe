"""The manual restore's plan (5.4.2.3) in both languages, and the commands it sends to a host."""

from procedures.clusters import parse_clusters
from procedures.manual_restore import PROCEDURE, restore_command, stop_static_pods_command
from procedures.plan import plan, render_text
from procedures.steps import Approval, Command

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


def test_nothing_changes_a_host_before_the_start_approval() -> None:
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
        "copy-snapshot",
    ]
    assert ids[start + 1 :] == [
        "stop-static-pods",
        "save-member-data",
        "restore-snapshot",
        "compare-member-lines",
        "approve-member-mismatch",
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


def test_the_member_gate_applies_only_when_the_lines_differ() -> None:
    gate = PROCEDURE.step("approve-member-mismatch")
    assert isinstance(gate, Approval) and gate.when is not None

    class Ctx:
        def __init__(self, differ: bool) -> None:
            self.vars = {"members_differ": differ}

    assert gate.when(Ctx(False)) is not None  # type: ignore[arg-type]
    assert gate.when(Ctx(True)) is None  # type: ignore[arg-type]


def test_plan_in_english_and_chinese() -> None:
    english = render_text(PROCEDURE, CLUSTER)
    assert "Control-plane hosts: master-0 (10.0.0.10), master-1 (10.0.0.11), master-2 (10.0.0.12)" in english
    assert (
        "Stop kube-apiserver, kube-controller-manager, kube-scheduler, then etcd (crictl stop leftovers) "
        "[stop-static-pods] — all control-plane hosts, one host at a time — §5.4.2.3 step 3" in english
    )
    assert 'only when the "added member" lines differ between hosts' in english
    chinese = render_text(PROCEDURE, CLUSTER, "zh-CN")
    assert "将 /var/lib/etcd/member 移到 /home/core/assets/old-member-data [save-member-data]" in chinese
    assert '仅当各主机的 "added member" 日志不一致时' in chinese
    assert [line.section for line in plan(PROCEDURE, "zh-CN")] == [line.section for line in plan(PROCEDURE)]


def test_the_restore_command_uses_the_runbooks_flags_and_the_etcd_image() -> None:
    member = {"name": "master-1", "peer_url": "https://10.0.0.11:2380"}
    command = restore_command(
        member,
        "master-0=https://10.0.0.10:2380,master-1=https://10.0.0.11:2380",
        "0f8e",
        "snapshot_2026.db",
        "/home/core/assets/backup/snapshot_2026.db",
    )
    assert "cp /home/core/assets/backup/snapshot_2026.db /var/lib/etcd/" in command
    assert (
        """jq -r '.spec.containers[]|select(.name=="etcdctl")|.image' /root/manifests-backup/etcd-pod.yaml"""
        in command
    )
    assert 'podman run --rm --entrypoint=/bin/bash -v /var/lib/etcd:/var/lib/etcd:z "$image" -c' in command
    for flag in (
        "snapshot restore /var/lib/etcd/snapshot_2026.db",
        '--name "master-1"',
        '--initial-cluster="master-0=https://10.0.0.10:2380,master-1=https://10.0.0.11:2380"',
        '--initial-cluster-token "openshift-etcd-0f8e"',
        '--initial-advertise-peer-urls "https://10.0.0.11:2380"',
        '--data-dir="/var/lib/etcd/restore-0f8e"',
        "--skip-hash-check=true",
    ):
        assert flag in command


def test_static_pods_stop_in_the_runbooks_order_etcd_last() -> None:
    command = stop_static_pods_command(None)  # type: ignore[arg-type]
    order = [
        command.index(f"mv /etc/kubernetes/manifests/{p}-pod.yaml")
        for p in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
    ]
    assert order == sorted(order)
    assert "crictl ps | grep etcd | grep -E -v 'operator|guard'" in command
    assert "crictl stop $left" in command
