"""The contract the restore procedure (5.4.2.2) relies on, driven as the runbook does it: over SSH to
each control-plane host (paramiko) and through the Kubernetes API (the kubernetes client)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import paramiko
import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from sim.twin import disasters, lifecycle
from sim.twin.layout import TwinSpec
from tests.twin.conftest import (
    approve,
    kube,
    own_twin,
    paramiko_client,
    pending_csrs,
    ready,
    run_paramiko,
    wait_for,
)

pytestmark = pytest.mark.twin

OPERATOR = ("operator.openshift.io", "v1")
QUORUM_GUARD = "useUnsupportedUnsafeNonHANonProductionUnstableEtcd"


@pytest.fixture(scope="module")
def twin_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSpec]:
    with own_twin(tmp_path_factory.mktemp("scenario")) as spec:
        yield spec


def sh(client: paramiko.SSHClient, command: str) -> str:
    code, out, err = run_paramiko(client, command)
    assert code == 0, f"{command}: exit {code}\n{out}\n{err}"
    return out


def installer_progress(api: ApiClient, plural: str) -> tuple[str, str]:
    """What `oc get <operator> -o=jsonpath='{...NodeInstallerProgressing...}'` prints: reason, message."""
    try:
        obj = CustomObjectsApi(api).get_cluster_custom_object(*OPERATOR, plural, "cluster")
    except ApiException as exc:
        # Restarting the only etcd member (the recovery host's) takes the API away for a moment.
        return "", f"API: {exc.status}"
    condition = next(c for c in obj["status"]["conditions"] if c["type"] == "NodeInstallerProgressing")
    return condition.get("reason", ""), condition["message"]


def force_redeployment(api: ApiClient, plural: str) -> None:
    reason = f"recovery-{datetime.datetime.now(datetime.UTC).isoformat(sep=' ')}"
    CustomObjectsApi(api).patch_cluster_custom_object(
        *OPERATOR, plural, "cluster", {"spec": {"forceRedeploymentReason": reason}}
    )


def api_answers(api: ApiClient) -> bool:
    try:
        CoreV1Api(api).list_namespace()
    except (ApiException, OSError):
        return False
    return True


def test_restore_to_a_previous_state_end_to_end(twin_cluster: TwinSpec) -> None:
    spec = twin_cluster
    recovery, others = spec.hosts[0], spec.hosts[1:]
    api = kube(spec)
    core = CoreV1Api(api)
    sessions = {h.short: paramiko_client(spec, h) for h in spec.hosts}
    try:
        # Before the disaster: a backup, then a change the restore must undo, then a kubelet that
        # renews its certificate after the backup.
        out = sh(
            sessions[recovery.short], "sudo -E /usr/local/bin/cluster-backup.sh /home/core/assets/backup"
        )
        assert "successfully saved" in out
        rotated = others[0]
        disasters.rotate_kubelet_cert(spec, rotated)
        disasters.delete_namespace(spec, "payments")
        assert "payments" not in {n.metadata.name for n in core.list_namespace().items}

        disasters.lose_quorum(spec, recovery)
        wait_for(lambda: not api_answers(api), 20, "the API to go down with etcd's quorum")

        # 3. Stop the static pods and move etcd's data away on every other control-plane host.
        for host in others:
            session = sessions[host.short]
            sh(session, "sudo mv -v /etc/kubernetes/manifests/etcd-pod.yaml /tmp")
            wait_for(
                lambda s=session: (
                    not sh(s, "sudo crictl ps | grep etcd | egrep -v 'operator|etcd-guard' || true")
                ),
                20,
                "etcd to stop",
            )
            sh(session, "sudo mv -v /etc/kubernetes/manifests/kube-apiserver-pod.yaml /tmp")
            wait_for(
                lambda s=session: (
                    not sh(s, "sudo crictl ps | grep kube-apiserver | egrep -v 'operator|guard' || true")
                ),
                20,
                "kube-apiserver to stop",
            )
            sh(session, "sudo mv -v /var/lib/etcd/ /tmp")

        # 4. The restore on the recovery host.
        out = sh(
            sessions[recovery.short], "sudo -E /usr/local/bin/cluster-restore.sh /home/core/assets/backup"
        )
        assert "starting restore-etcd static pod" in out
        wait_for(lambda: api_answers(api), 60, "the API to answer again")
        wait_for(
            lambda: "payments" in {n.metadata.name for n in core.list_namespace().items}, 30, "payments back"
        )
        members = lifecycle.etcdctl(spec, "member", "list").stdout.splitlines()
        assert [m.split(", ")[2] for m in members] == [recovery.name]

        # 5. The node whose certificate changed after the backup is NotReady; clear its PKI.
        wait_for(lambda: ready(api, rotated.name) != "True", 15, f"{rotated.short} to be NotReady")
        sh(sessions[rotated.short], "sudo rm -f /var/lib/kubelet/pki/*.pem")
        # 6. Restart the kubelets: recovery host first.
        for host in spec.hosts:
            sh(sessions[host.short], "sudo systemctl restart kubelet.service")
        # 7. Approve the node-bootstrapper CSRs (the serving CSRs are auto-approved on IPI).
        signer = "kubernetes.io/kube-apiserver-client-kubelet"
        wait_for(lambda: pending_csrs(api, signer), 20, "a node-bootstrapper CSR")
        for csr in pending_csrs(api, signer):
            approve(api, csr)
        wait_for(lambda: all(ready(api, h.name) == "True" for h in spec.hosts), 30, "every node Ready")

        # 8. A single etcd member: one etcd pod, Running.
        pods = core.list_namespaced_pod("openshift-etcd", label_selector="k8s-app=etcd").items
        assert [(p.metadata.name, p.status.phase) for p in pods] == [(f"etcd-{recovery.name}", "Running")]

        # 11.-14. Quorum guard off, etcd forced to redeploy, quorum guard on again.
        custom = CustomObjectsApi(api)
        custom.patch_cluster_custom_object(
            *OPERATOR, "etcds", "cluster", {"spec": {"unsupportedConfigOverrides": {QUORUM_GUARD: True}}}
        )
        force_redeployment(api, "etcds")
        custom.patch_cluster_custom_object(
            *OPERATOR, "etcds", "cluster", {"spec": {"unsupportedConfigOverrides": None}}
        )
        # 15. Every node at the new revision, and etcd back to three started members.
        wait_for(
            lambda: (
                installer_progress(api, "etcds") == ("AllNodesAtLatestRevision", "3 nodes are at revision 3")
            ),
            90,
            "etcd at revision 3 on all nodes",
        )
        members = [line.split(", ") for line in lifecycle.etcdctl(spec, "member", "list").stdout.splitlines()]
        assert sorted(m[2] for m in members if m[1] == "started") == sorted(h.name for h in spec.hosts)
        assert lifecycle.etcd_healthy(spec)
        manifest = json.loads(
            sh(sessions[others[0].short], "sudo cat /etc/kubernetes/manifests/etcd-pod.yaml")
        )
        assert manifest["metadata"]["labels"]["revision"] == "3"

        # 16. Forced rollouts of the other control-plane operators, one after the other.
        for plural, revision in (("kubeapiservers", 8), ("kubecontrollermanagers", 7), ("kubeschedulers", 6)):
            force_redeployment(api, plural)
            wait_for(
                lambda p=plural, r=revision: (
                    installer_progress(api, p) == ("AllNodesAtLatestRevision", f"3 nodes are at revision {r}")
                ),
                60,
                f"{plural} at revision {revision}",
            )
        # 17. Three etcd pods Running; the hosts run the new revisions.
        pods = core.list_namespaced_pod("openshift-etcd", label_selector="k8s-app=etcd").items
        assert sorted(p.metadata.name for p in pods if p.status.phase == "Running") == sorted(
            f"etcd-{h.name}" for h in spec.hosts
        )
        listing = sh(sessions[others[1].short], "sudo ls /etc/kubernetes/static-pod-resources").split()
        assert {
            "etcd-pod-3",
            "kube-apiserver-pod-8",
            "kube-controller-manager-pod-7",
            "kube-scheduler-pod-6",
        } <= set(listing)
    finally:
        for session in sessions.values():
            session.close()
