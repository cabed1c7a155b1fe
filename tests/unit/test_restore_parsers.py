"""The restore's pure parts: what crictl, ip, etcdctl, the backup listing and API objects say."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from procedures import restore_preflight
from procedures.clusters import Host
from procedures.restore_api import (
    installer_state,
    ips_referenced,
    next_master_name,
    node_of_host,
    replacement,
    stuck_terminating,
    workloads_to_restart,
)
from procedures.restore_host import parse_ip_addresses, parse_members, runbook_grep, script_state, vips_held
from procedures.restore_preflight import (
    backup_problem,
    failing_webhooks,
    host_problems,
    infrastructure_vips,
    keepalived_vips,
    newest_backup,
    parse_backup,
    parse_probe,
    probe_command,
    same_z_stream,
    untrusted_facts,
    vips_text,
)
from procedures.restore_values import UntrustedValue
from procedures.steps import StepFailed

CRICTL_ROWS = (
    ("CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"),
    ("3ad41b7908e32", "36f86e2eeaaff", "About a minute ago", "Running", "etcd", "0", "7c05f8af362f0"),
    ("5f6a1b2c3d4e5", "36f86e2eeaaff", "2 minutes ago", "Running", "etcd-operator", "0", "1a2b3c4d5e6f7"),
    ("6a7b8c9d0e1f2", "36f86e2eeaaff", "2 minutes ago", "Running", "etcd-guard", "0", "2b3c4d5e6f7a8"),
    ("7b8c9d0e1f2a3", "f79db5a8799fd", "2 minutes ago", "Running", "kube-apiserver", "0", "3c4d5e6f7a8b9"),
    ("8c9d0e1f2a3b4", "f79db5a8799fd", "2 minutes ago", "Running", "kube-apiserver-operator", "0", "4d5e6f7"),
)
CRICTL_PS = "\n".join("   ".join(f"{column:<20}" for column in row).rstrip() for row in CRICTL_ROWS) + "\n"

VALID = "\\       valid_lft forever preferred_lft forever"
IP_O_ADDRESS = "".join(
    f"{line}{VALID}\n"
    for line in (
        "1: lo    inet 127.0.0.1/8 scope host lo",
        "2: br-ex    inet 10.0.0.11/24 brd 10.0.0.255 scope global br-ex",
        "2: br-ex    inet 10.0.0.5/32 scope global secondary br-ex",
        "2: br-ex    inet 10.0.0.7/32 scope global secondary br-ex",
        "2: br-ex    inet6 fe80::1/64 scope link ",
    )
)


def test_the_runbooks_crictl_greps() -> None:
    etcd = runbook_grep(CRICTL_PS, "etcd", ("operator", "etcd-guard"))
    assert [line.split()[0] for line in etcd] == ["3ad41b7908e32"]
    kas = runbook_grep(CRICTL_PS, "kube-apiserver", ("operator", "guard"))
    assert [line.split()[0] for line in kas] == ["7b8c9d0e1f2a3"]
    assert runbook_grep(CRICTL_PS.splitlines()[0], "etcd", ("operator",)) == []


def test_ip_addresses_and_the_vips_a_host_holds() -> None:
    addresses = parse_ip_addresses(IP_O_ADDRESS)
    assert [(a.device, a.cidr) for a in addresses][1:3] == [
        ("br-ex", "10.0.0.11/24"),
        ("br-ex", "10.0.0.5/32"),
    ]
    assert addresses[-1].cidr == "fe80::1/64"
    held = vips_held(IP_O_ADDRESS, ["10.0.0.5", "10.0.0.7", "10.0.0.9"])
    assert [(a.ip, a.device) for a in held] == [("10.0.0.5", "br-ex"), ("10.0.0.7", "br-ex")]
    assert vips_held(IP_O_ADDRESS, ["10.0.0.1"]) == [], "10.0.0.1 is not 10.0.0.11"


def test_etcdctl_member_list() -> None:
    output = (
        'crictl noise\n{"header":{"cluster_id":1},"members":['
        '{"ID":5575518555332924108,"name":"master-0","peerURLs":["https://10.0.0.11:2380"],'
        '"clientURLs":["https://10.0.0.11:2379"]},'
        '{"ID":12,"peerURLs":["https://10.0.0.12:2380"]}]}'
    )
    members = parse_members(output)
    assert [(m["name"], m["started"]) for m in members] == [("master-0", True), ("", False)]
    assert members[0]["id"] == format(5575518555332924108, "x")
    with pytest.raises(StepFailed) as failure:
        parse_members("Error: context deadline exceeded")
    assert failure.value.summary.key == "restore.members_unreadable"


def test_where_cluster_restore_stopped() -> None:
    assert script_state("etcd snapshot  does not exist").key == "restore.state.untouched"
    assert script_state("...stopping etcd-pod.yaml\nWaiting for container etcd to stop").key == (
        "restore.state.pods_moved"
    )
    assert script_state("Moving etcd data-dir /var/lib/etcd/member to /var/lib/etcd-backup").key == (
        "restore.state.data_moved"
    )
    assert script_state("starting restore-etcd static pod\nstarting kube-apiserver-pod.yaml").key == (
        "restore.state.after_restore_pod"
    )


PROBE = """\
restore_script=yes
etcd_scripts=yes
kubelet=active
etcd_running=c6a74dc2b462
etcd_data=yes
keepalived=yes
keepalived:spec:
keepalived:  containers:
keepalived:  - name: keepalived-monitor
keepalived:    command: [dynkeepalived, --api-vip, 10.0.0.5, --ingress-vip, 10.0.0.7]
keepalived:    args: ["--api-vips=10.0.0.5,fd00::5"]
version=4.14.38
free_kib=80716396
file=snapshot_2026-11-29_101010.db
file=snapshot_2026-11-29_111111.db
file=static_kuberesources_2026-11-29_101010.tar.gz
file=static_kuberesources_2026-11-29_111111.tar.gz
file=backup-info_2026-11-29_111111.json
proxy:HTTP_PROXY=http://proxy.example.com:3128
proxy:NO_PROXY=".cluster.local,10.0.0.0/16"
proxy:SOMETHING_ELSE=x
"""


def test_the_host_probe() -> None:
    facts = parse_probe(PROBE)
    assert facts["kubelet"] == "active" and facts["version"] == "4.14.38"
    assert facts["vips"] == {"api": ["10.0.0.5", "fd00::5"], "ingress": ["10.0.0.7"]}
    assert facts["proxy"] == {
        "HTTP_PROXY": "http://proxy.example.com:3128",
        "NO_PROXY": ".cluster.local,10.0.0.0/16",
    }
    assert host_problems(facts, "/usr/local/bin/cluster-restore.sh") == []
    assert backup_problem(facts, "/backup") == ""
    broken = parse_probe("restore_script=no\netcd_scripts=yes\nkubelet=inactive\n")
    assert host_problems(broken, "/usr/local/bin/cluster-restore.sh") == [
        "no /usr/local/bin/cluster-restore.sh",
        "kubelet is inactive",
    ]
    assert backup_problem(broken, "/backup") == "no snapshot_<ts>.db in /backup"


KEEPALIVED_YAML = """\
kind: Pod
apiVersion: v1
metadata:
  name: keepalived
  namespace: openshift-kni-infra
spec:
  initContainers:
  - name: render-config-keepalived
    image: quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:1
    command:
    - runtimecfg
    - render
    - "/etc/kubernetes/kubeconfig"
    - "--api-vips"
    - "192.0.2.5,2001:db8::5"
    - "--ingress-vips"
    - "192.0.2.9"
    - "/config"
  containers:
  - name: keepalived
    command:
    - /bin/bash
    - -c
    - |
      remove_vip "192.0.2.5"
      dynkeepalived --api-vips "${api_vips}" --ingress-vips "${ingress_vips}"
  - name: keepalived-monitor
    command:
    - dynkeepalived
    - "/etc/keepalived/keepalived.conf"
    - --api-vip=192.0.2.5
    - --ingress-vip
    - 192.0.2.9
"""
"""keepalived.yaml in the machine-config operator's layout (4.12+): each flag and its value are separate
items of a container's command; one container uses --flag=value, one runs a shell script."""


def test_the_probe_reads_the_vips_from_the_real_keepalived_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's own shell, run on this machine against a keepalived.yaml in the real layout."""
    manifest = tmp_path / "keepalived.yaml"
    manifest.write_text(KEEPALIVED_YAML)
    monkeypatch.setattr(restore_preflight, "KEEPALIVED_MANIFEST", str(manifest))
    command = probe_command(str(tmp_path / "script"), str(tmp_path))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True)
    facts = parse_probe(done.stdout)
    assert facts["keepalived"] == "yes"
    assert facts["vips"] == {"api": ["192.0.2.5", "2001:db8::5"], "ingress": ["192.0.2.9"]}


def test_keepalived_vips_are_checked_and_a_broken_manifest_is_said() -> None:
    assert keepalived_vips("spec:\n  containers:\n  - command: [x, --api-vips]\n") == {
        "api": [],
        "ingress": [],
    }
    with pytest.raises(ValueError, match="not a pod"):
        keepalived_vips("- --api-vip\n- 10.0.0.5\n")
    with pytest.raises(ValueError, match="not YAML"):
        keepalived_vips("spec: [\n")
    facts = parse_probe("keepalived=yes\nkeepalived:spec: {\n")
    assert facts["vips"] == {"api": [], "ingress": []} and facts["keepalived_error"].startswith("not YAML")
    tampered = parse_probe(
        "keepalived:spec:\nkeepalived:  containers:\nkeepalived:  - command: [--api-vip, '10.0.0.5;reboot']\n"
    )
    (error,) = untrusted_facts(tampered, "/backup")
    assert "the api VIP '10.0.0.5;reboot'" in str(error) and "keepalived.yaml" in str(error)


def test_the_vips_in_the_infrastructure_object() -> None:
    baremetal = {
        "status": {
            "platformStatus": {
                "type": "BareMetal",
                "baremetal": {
                    "apiServerInternalIP": "192.0.2.5",
                    "apiServerInternalIPs": ["192.0.2.5", "2001:db8::5"],
                    "ingressIP": "192.0.2.9",
                    "ingressIPs": ["192.0.2.9"],
                },
            }
        }
    }
    assert infrastructure_vips(baremetal) == {"api": ["192.0.2.5", "2001:db8::5"], "ingress": ["192.0.2.9"]}
    older = {
        "status": {"platformStatus": {"type": "VSphere", "vsphere": {"apiServerInternalIP": "10.0.0.5"}}}
    }
    assert infrastructure_vips(older) == {"api": ["10.0.0.5"], "ingress": []}
    aws = {"status": {"platformStatus": {"type": "AWS", "aws": {"region": "us-east-1"}}}}
    assert infrastructure_vips(aws) == {"api": [], "ingress": []}
    forged = {"status": {"platformStatus": {"type": "BareMetal", "baremetal": {"ingressIPs": ["$(id)"]}}}}
    with pytest.raises(UntrustedValue, match="Infrastructure"):
        infrastructure_vips(forged)


def test_the_summary_says_where_the_vips_came_from() -> None:
    vips = {"api": ["192.0.2.5"], "ingress": ["192.0.2.9"]}
    assert vips_text(vips, {"from": "infrastructure"}).key == "preflight.vips_infrastructure"
    from_hosts = vips_text(vips, {"from": "keepalived", "hosts": ["master-0", "master-2"]})
    assert from_hosts.key == "preflight.vips_keepalived" and from_hosts.args["hosts"] == "master-0, master-2"
    assert vips_text({"api": [], "ingress": []}, {}).key == "preflight.vips_none"


def test_the_backup_files_cluster_restore_would_pick() -> None:
    files = parse_probe(PROBE)["files"]
    assert newest_backup(files) == (
        "snapshot_2026-11-29_111111.db",
        "static_kuberesources_2026-11-29_111111.tar.gz",
        "2026-11-29_111111",
    )
    no_tarball = ["snapshot_2026-11-29_111111.db"]
    assert newest_backup(no_tarball) is None
    assert backup_problem({"files": no_tarball}, "/b") == "no static_kuberesources_<ts>.tar.gz in /b"
    mixed = ["snapshot_2026-11-29_111111.db", "static_kuberesources_2026-11-29_101010.tar.gz"]
    assert "not from the same backup" in backup_problem({"files": mixed}, "/b")


def test_the_backup_listing() -> None:
    stdout = (
        "snapshot=snapshot_2026-11-29_111111.db 2105376\n"
        "resources=static_kuberesources_2026-11-29_111111.tar.gz 71234\n"
        'info={"cluster_version": "4.14.38", "host": "master-0", "time": "2026-11-29T11:11:11Z"}\n'
        'status={"hash":1,"revision":4242,"totalKey":900,"totalSize":2105376}\n'
    )
    backup = parse_backup(stdout, "/backup")
    assert backup["timestamp"] == "2026-11-29_111111" and backup["revision"] == 4242
    assert backup["snapshot_size"] == 2105376 and backup["info"]["cluster_version"] == "4.14.38"
    without_info = stdout.replace(stdout.splitlines()[2], "info=")
    assert parse_backup(without_info, "/backup")["info"] == {}
    with pytest.raises(StepFailed) as failure:
        parse_backup(
            stdout.replace(stdout.splitlines()[3], "status=Error: snapshot file has wrong size"), "/backup"
        )
    assert failure.value.summary.key == "preflight.snapshot_corrupt"


def test_z_streams() -> None:
    assert same_z_stream("4.14.38", "4.14.38")
    assert same_z_stream("4.14.38+build.1", "4.14.38")
    assert not same_z_stream("4.14.37", "4.14.38")
    assert not same_z_stream("4.14.3", "4.14.38")


def test_webhooks_that_can_block_the_restore() -> None:
    configurations = [
        {
            "metadata": {"name": "payments"},
            "webhooks": [{"name": "a", "failurePolicy": "Fail"}, {"name": "b"}],
        },
        {"metadata": {"name": "autoscaling"}, "webhooks": [{"name": "c", "failurePolicy": "Ignore"}]},
    ]
    assert failing_webhooks(configurations, "validating") == [
        "validating/payments/a",
        "validating/payments/b",
    ]


def test_nodes_and_machines_of_hosts() -> None:
    host = Host("master-1.prod.example.com", "10.0.0.12", 22, "core", "k", "kh")
    nodes = [
        {"metadata": {"name": "ip-10-0-0-11"}, "status": {"addresses": [{"address": "10.0.0.11"}]}},
        {"metadata": {"name": "ip-10-0-0-12"}, "status": {"addresses": [{"address": "10.0.0.12"}]}},
    ]
    assert node_of_host(nodes, host) == "ip-10-0-0-12"
    assert node_of_host([{"metadata": {"name": "master-1"}, "status": {}}], host) == "master-1"
    assert node_of_host(nodes[:1], host) is None
    assert next_master_name("prod-8qw5l-master-0", {"prod-8qw5l-master-1", "prod-8qw5l-master-3"}) == (
        "prod-8qw5l-master-4"
    )


def test_the_replacement_machine_drops_what_the_runbook_says() -> None:
    old = {
        "apiVersion": "machine.openshift.io/v1beta1",
        "kind": "Machine",
        "metadata": {
            "name": "prod-master-0",
            "namespace": "openshift-machine-api",
            "labels": {"machine.openshift.io/cluster-api-machine-role": "master"},
            "annotations": {"machine.openshift.io/instance-state": "stopped"},
            "generation": 2,
            "resourceVersion": "123",
            "uid": "u",
            "selfLink": "/x",
        },
        "spec": {
            "providerID": "aws:///us-east-1a/i-0",
            "providerSpec": {"value": {"instanceType": "m6i.xlarge"}},
        },
        "status": {"phase": "Running"},
    }
    new = replacement(old, "prod-master-3")
    assert new["metadata"] == {
        "name": "prod-master-3",
        "namespace": "openshift-machine-api",
        "labels": {"machine.openshift.io/cluster-api-machine-role": "master"},
    }
    assert new["spec"] == {"providerSpec": {"value": {"instanceType": "m6i.xlarge"}}}
    assert "status" not in new


def test_node_installer_progressing() -> None:
    done = {
        "status": {
            "latestAvailableRevision": 7,
            "conditions": [
                {
                    "type": "NodeInstallerProgressing",
                    "reason": "AllNodesAtLatestRevision",
                    "message": "3 nodes are at revision 7",
                }
            ],
        }
    }
    assert installer_state(done) == (7, "AllNodesAtLatestRevision", "3 nodes are at revision 7")
    rolling = {
        "status": {
            "latestAvailableRevision": 7,
            "conditions": [
                {
                    "type": "NodeInstallerProgressing",
                    "status": "True",
                    "message": "2 nodes are at revision 6; 1 nodes are at revision 7",
                }
            ],
        }
    }
    assert installer_state(rolling) == (7, "", "2 nodes are at revision 6; 1 nodes are at revision 7")
    assert installer_state({}) == (0, "", "")


def test_ovn_references_and_stuck_pods() -> None:
    ds = {
        "spec": {
            "template": {
                "spec": {"containers": [{"env": [{"name": "OVN_NB", "value": "ssl:10.0.0.12:9641"}]}]}
            }
        }
    }
    assert ips_referenced(ds, ["10.0.0.12", "10.0.0.13"]) == ["10.0.0.12"]
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
    pods = [
        {"metadata": {"name": "a", "deletionTimestamp": "2026-11-29T11:58:00Z"}},
        {"metadata": {"name": "b", "deletionTimestamp": "2026-11-29T11:59:50Z"}},
        {"metadata": {"name": "c"}},
    ]
    assert [p["metadata"]["name"] for p in stuck_terminating(pods, now, 60)] == ["a"]


def test_workloads_to_restart_openshift_first() -> None:
    items = [
        ("deployment", {"metadata": {"namespace": "payments", "name": "api"}}),
        ("deployment", {"metadata": {"namespace": "openshift-ingress", "name": "router-default"}}),
        ("daemonset", {"metadata": {"namespace": "kube-system", "name": "proxy"}}),
    ]
    assert workloads_to_restart(items) == [
        "oc -n kube-system rollout restart daemonset/proxy",
        "oc -n openshift-ingress rollout restart deployment/router-default",
        "oc -n payments rollout restart deployment/api",
    ]
