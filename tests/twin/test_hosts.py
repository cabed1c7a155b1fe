"""Each twin host is its own machine: own files, own sshd with key-only login, sudo without a password."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from procedures.clusters import load_clusters
from sim.twin.layout import TwinSpec
from tests.twin.conftest import paramiko_client, run_paramiko, ssh

pytestmark = pytest.mark.twin


def test_files_written_on_one_host_are_not_seen_elsewhere(twin: TwinSpec) -> None:
    first, second = twin.hosts[0], twin.hosts[1]
    marker = f"marker-{uuid.uuid4().hex}"
    for path in (
        f"/home/core/{marker}",
        f"/etc/kubernetes/{marker}",
        f"/var/lib/etcd-{marker}",
        f"/tmp/{marker}",
    ):
        assert ssh(twin, first, f"sudo -n touch {path} && test -e {path}").returncode == 0
        assert ssh(twin, second, f"test -e {path}").returncode == 1, f"{path} leaked to {second.short}"
        assert not Path(path).exists(), f"{path} leaked to the machine"
        assert twin.in_host(first, path).exists()


def test_paramiko_with_known_hosts_runs_sudo_without_a_password(twin: TwinSpec) -> None:
    client = paramiko_client(twin, twin.hosts[1])
    try:
        status, out, err = run_paramiko(client, "sudo -n id -un && id -un")
    finally:
        client.close()
    assert status == 0, err
    assert out.splitlines()[:2] == ["root", "core"]


def test_password_and_unknown_keys_are_refused(twin: TwinSpec, tmp_path: Path) -> None:
    import subprocess

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    result = subprocess.run(
        [
            "ssh",
            "-i",
            str(stranger),
            "-o",
            f"UserKnownHostsFile={twin.dir / 'known_hosts'}",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            str(twin.ssh_port),
            f"core@{twin.hosts[0].address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_clusters_file_describes_the_twin_for_drbot(twin: TwinSpec) -> None:
    cluster = load_clusters(twin.dir / "clusters.yaml").get(twin.name)
    assert [(h.name, h.address, h.port, h.user) for h in cluster.hosts] == [
        (h.name, h.address, twin.ssh_port, "core") for h in twin.hosts
    ]
    assert cluster.hosts[0].known_hosts == str(twin.dir / "known_hosts")


def test_keepalived_vips_live_on_the_first_host_until_deleted(twin: TwinSpec) -> None:
    holder, other = twin.hosts[0], twin.hosts[1]
    listing = ssh(
        twin, holder, f"ip -o address | egrep '{twin.api_vip}|{twin.ingress_vip}'"
    ).stdout.splitlines()
    assert [line.split()[1] for line in listing] == ["br-ex", "br-ex"]
    assert ssh(twin, other, f"ip -o address | grep {twin.api_vip}").returncode == 1
    assert "Operation not permitted" in ssh(twin, holder, f"ip address del {twin.api_vip} dev br-ex").stderr
    assert ssh(twin, holder, f"sudo ip address del {twin.api_vip} dev br-ex").returncode == 0
    assert ssh(twin, holder, f"ip -o address | grep {twin.api_vip}").stdout == ""
    assert ssh(twin, holder, f"sudo ip address add {twin.api_vip}/32 dev br-ex").returncode == 0


def test_runbook_files_are_where_the_runbook_reads_them(twin: TwinSpec) -> None:
    host = twin.hosts[2]
    pod_yaml = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/restore-etcd-pod/pod.yaml"
    etcd_name = ssh(
        twin,
        host,
        f"cat {pod_yaml} | grep -A 1 "
        f"$(cat {pod_yaml} | grep 'export ETCD_NAME' | grep -Eo 'NODE_.+_ETCD_NAME') "
        "| grep -Po '(?<=value: \").+(?=\")'",
    ).stdout.strip()
    assert etcd_name == host.name
    address = ssh(
        twin,
        host,
        f"echo {etcd_name} | sed -E 's/[.-]/_/g' | xargs -I {{}} grep {{}} "
        "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env | grep 'IP' "
        "| grep -Po '(?<=\").+(?=\")'",
    ).stdout.strip()
    assert address == host.address
    image = ssh(
        twin,
        host,
        "sudo jq -r '.spec.containers[]|select(.name==\"etcdctl\")|.image' "
        "/etc/kubernetes/manifests/etcd-pod.yaml",
    ).stdout.strip()
    assert image.startswith("quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:")
    pki = ssh(twin, host, "sudo ls /var/lib/kubelet/pki").stdout.split()
    assert {"kubelet-client-current.pem", "kubelet-server-current.pem"} <= set(pki) and len(pki) == 4
    version = ssh(
        twin,
        host,
        f"sudo podman run --rm -it --entrypoint=/bin/bash -v /var/lib/etcd:/var/lib/etcd:z {image} "
        "-c 'etcdctl version'",
    ).stdout
    assert "etcdctl version: 3." in version
