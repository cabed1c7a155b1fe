"""The restore's plan: every runbook step in order, honest flags, rendered in English and Chinese."""

from __future__ import annotations

from procedures.clusters import parse_clusters
from procedures.i18n import t
from procedures.plan import plan, render_text
from procedures.registry import PROCEDURES
from procedures.restore import PROCEDURE
from procedures.steps import Approval, Choice, WaitUntil

CLUSTER = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod-east",
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [{"name": f"master-{i}", "address": f"10.0.0.1{i}"} for i in range(3)],
            }
        ]
    }
).get("prod-east")


def ids() -> list[str]:
    return [step.id for step in PROCEDURE.steps]


def test_restore_is_registered_with_its_options() -> None:
    assert PROCEDURES["restore"] is PROCEDURE
    assert set(PROCEDURE.parameters) == {"backup", "recovery-host"}


def test_the_runbook_order() -> None:
    order = [
        "probe-hosts",
        "choose-recovery-host",
        "check-backup",
        "check-cluster",
        "approve-start",
        "stop-etcd",
        "wait-etcd-stopped",
        "stop-kube-apiserver",
        "wait-kube-apiserver-stopped",
        "move-etcd-data",
        "stop-keepalived",
        "remove-vips",
        "check-recovery-vip",
        "approve-restore-script",
        "run-restore-script",
        "clear-kubelet-pki",
        "restart-kubelet-recovery",
        "restart-kubelet-others",
        "approve-csrs",
        "confirm-single-etcd",
        "ovn-delete-nodes",
        "ovn-wait-ips",
        "ovn-remove-databases",
        "ovn-restart-control-plane",
        "ovn-restart-node-pods",
        "ovn-stuck-terminating",
        "plan-machines",
        "approve-machines",
        "recreate-machines",
        "confirm-upi-machines",
        "quorum-guard-off",
        "force-etcd",
        "quorum-guard-on",
        "wait-etcd",
        "force-kube-apiserver",
        "wait-kube-apiserver",
        "force-kube-controller-manager",
        "wait-kube-controller-manager",
        "force-kube-scheduler",
        "wait-kube-scheduler",
        "etcd-pods-running",
        "workloads-to-restart",
    ]
    positions = [ids().index(step) for step in order]
    assert positions == sorted(positions)
    assert len(set(ids())) == len(ids()), "step ids are unique"


def test_every_step_cites_its_runbook_step() -> None:
    for step in PROCEDURE.steps:
        assert step.section.startswith("5.4.2.2"), step.id
    by_id = {step.id: step for step in PROCEDURE.steps}
    assert by_id["run-restore-script"].section == "5.4.2.2 step 7–8"
    assert by_id["approve-csrs"].section == "5.4.2.2 step 11"
    assert by_id["recreate-machines"].section == "5.4.2.2 step 16"
    assert by_id["wait-kube-scheduler"].section == "5.4.2.2 step 22"


def test_flags_are_honest() -> None:
    by_id = {step.id: step for step in PROCEDURE.steps}
    for step_id in ("move-etcd-data", "run-restore-script"):
        assert not by_id[step_id].idempotent and by_id[step_id].destructive, step_id
    # It checks the cluster before it acts and works from a plan kept with the run: it may run again.
    assert by_id["recreate-machines"].idempotent and by_id["recreate-machines"].destructive
    for step_id in ("approve-start", "approve-restore-script", "approve-machines"):
        assert isinstance(by_id[step_id], Approval) and by_id[step_id].destructive, step_id
    assert not by_id["confirm-upi-machines"].destructive, "any approver may confirm the manual work"
    assert isinstance(by_id["choose-recovery-host"], Choice)
    assert by_id["choose-recovery-host"].var == "recovery_host"
    nothing_changes = ids()[: ids().index("approve-start")]
    assert not any(by_id[step_id].destructive for step_id in nothing_changes)


def test_every_wait_is_bounded_and_says_what_it_waits_for() -> None:
    waits = [step for step in PROCEDURE.steps if isinstance(step, WaitUntil)]
    assert len(waits) >= 15
    for step in waits:
        assert 0 < step.timeout <= 1800 and step.interval > 0, step.id
        assert t(step.title) != step.title.key, step.id


def test_the_plan_in_english() -> None:
    text = render_text(PROCEDURE, CLUSTER, "en")
    assert (
        text.splitlines()[0]
        == "*Restore to a previous cluster state* (runbook §5.4.2.2) on cluster prod-east"
    )
    assert "Run cluster-restore.sh on the recovery host [run-restore-script]" in text
    assert "destructive: needs approval by someone else, not re-run automatically" in text
    assert "— OVN-Kubernetes only" in text and "— user-provisioned clusters" in text
    assert "master-0 (10.0.0.10)" in text
    lines = plan(PROCEDURE, "en")
    assert len(lines) == len(PROCEDURE.steps)
    assert all(line.title and line.title != PROCEDURE.steps[i].title.key for i, line in enumerate(lines))


def test_the_plan_in_chinese() -> None:
    text = render_text(PROCEDURE, CLUSTER, "zh-CN")
    assert "恢复到一个以前的集群状态" in text.splitlines()[0]
    assert "在恢复主机上运行 cluster-restore.sh [run-restore-script]" in text
    assert "关闭 etcd 仲裁保护 [quorum-guard-off]" in text
    assert "仅限 OVN-Kubernetes" in text
    english = set(render_text(PROCEDURE, CLUSTER, "en").splitlines()[1:])
    assert not english & set(text.splitlines()[1:]), "every plan line is translated"
