"""`drbot twin up --scripts-from DIR`: the scripts in DIR are what runs on every host, each naming that
host; a directory without them, or with something else in their place, is refused before anything starts.

OpenShift's own scripts cannot be committed here, so the scripts are stand-ins that use the host the way
OpenShift's 4.14 scripts do: spelled for one real node (as copied from its /usr/local/bin), sourcing the
twin's etcd.env and etcd-common-tools, taking etcdctl from the etcd image with dl_etcdctl, asking
`oc get co` whether an operator is progressing, and finding a static pod in a tarball with tar's
wildcard member lookup (no --wildcards).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.twin import hostscripts, lifecycle
from sim.twin.layout import HostSpec, TwinError, TwinSpec
from tests.twin.conftest import ssh

pytestmark = pytest.mark.twin

COPIED_FROM = "ip_10_0_1_5_ec2_internal"
"""The real node the stand-in backup script was copied from, as its etcd variables spell it."""
ETCD_SCRIPTS = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts"
BACKUP = f"""#!/usr/bin/env bash

### Created by cluster-etcd-operator. DO NOT edit.

set -o errexit
set -o pipefail
source {ETCD_SCRIPTS}/etcd.env
source {ETCD_SCRIPTS}/etcd-common-tools
echo "stand-in backup on ${{NODE_{COPIED_FROM}_IP}}"
echo "etcdctl before: $(command -v etcdctl || echo none)"
dl_etcdctl > /dev/null
echo "etcdctl after: $(command -v etcdctl)"
progressing=$(oc get co etcd -o jsonpath='{{.status.conditions[?(@.type=="Progressing")].status}}')
echo "etcd progressing: $progressing"
tar -cpzf /tmp/resources.tar.gz -C /etc/kubernetes static-pod-resources/kube-apiserver-pod-7
echo "member: $(tar -tvf /tmp/resources.tar.gz "*kube-apiserver-pod.yaml" | awk '{{ print $6 }}')"
"""
RESTORE = """#!/usr/bin/env bash
### Created by cluster-etcd-operator. DO NOT edit.
echo "stand-in restore from $1"
"""


def scripts_dir(directory: Path, backup: str | bytes = BACKUP, restore: str | None = RESTORE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "cluster-backup.sh"
    target.write_bytes(backup) if isinstance(backup, bytes) else target.write_text(backup)
    if restore is not None:
        (directory / "cluster-restore.sh").write_text(restore)
    return directory


def twin_up(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim.twin", "up", "--dir", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def standin_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSpec]:
    if os.geteuid() != 0:
        pytest.skip("the twin needs root")
    base = tmp_path_factory.mktemp("scripts-from")
    try:
        spec, _started = lifecycle.up(base / "twin", name="twin", scripts_from=scripts_dir(base / "scripts"))
        yield spec
    finally:
        if (base / "twin" / "twin.json").exists():
            lifecycle.down(base / "twin")


def test_the_given_scripts_run_on_every_host_naming_it(standin_twin: TwinSpec) -> None:
    for host in standin_twin.hosts:
        backup = ssh(standin_twin, host, "sudo cluster-backup.sh")
        assert backup.returncode == 0, backup.stderr + backup.stdout
        assert backup.stdout.splitlines() == [
            f"stand-in backup on {host.address}",
            "etcdctl before: none",
            "etcdctl after: /etc/kubernetes/static-pod-resources/bin/etcdctl",
            "etcd progressing: False",
            "member: static-pod-resources/kube-apiserver-pod-7/kube-apiserver-pod.yaml",
        ]
        restore = ssh(standin_twin, host, "sudo cluster-restore.sh /home/core/assets/backup")
        assert restore.stdout == "stand-in restore from /home/core/assets/backup\n"
        # The etcd pod's ConfigMap copy on the host is the same script, as on a real node.
        copy = ssh(standin_twin, host, f"sudo cat {ETCD_SCRIPTS}/cluster-backup.sh").stdout
        assert copy == BACKUP.replace(COPIED_FROM, host.key)


def test_etcdctl_is_only_in_the_etcd_image(standin_twin: TwinSpec) -> None:
    host = standin_twin.hosts[1]
    on_host = ssh(standin_twin, host, "etcdctl version; sudo etcdctl version; ls /usr/bin/etcdctl")
    assert on_host.returncode != 0
    assert "etcdctl: command not found" in on_host.stderr
    assert "No such file or directory" in on_host.stderr
    in_pod = ssh(
        standin_twin, host, "sudo crictl exec $(sudo crictl ps --name '^etcdctl$' -q) etcdctl member list"
    )
    assert in_pod.returncode == 0 and in_pod.stdout.count(", started, ") == len(standin_twin.hosts)
    image = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:0"
    in_image = ssh(standin_twin, host, f"sudo podman run --rm {image} -c '/usr/bin/etcdctl version'")
    assert in_image.returncode == 0 and "etcdctl version: 3." in in_image.stdout


def test_oc_on_a_host_reads_the_twin_api_like_oc(standin_twin: TwinSpec) -> None:
    host = standin_twin.hosts[0]
    kubeconfig = (
        "--kubeconfig /etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs"
    )
    nodes = ssh(standin_twin, host, f"sudo oc {kubeconfig}/localhost.kubeconfig get nodes -o name")
    assert {f"node/{h.name}" for h in standin_twin.hosts} <= set(nodes.stdout.split())
    table = ssh(standin_twin, host, f"sudo oc {kubeconfig}/localhost.kubeconfig get clusteroperator etcd")
    assert table.stdout.split("\n")[0].split()[:4] == ["NAME", "VERSION", "AVAILABLE", "PROGRESSING"]
    missing = ssh(standin_twin, host, f"sudo oc {kubeconfig}/localhost.kubeconfig get co nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith(
        'Error from server (NotFound): clusteroperators.config.openshift.io "nope"'
    )
    no_config = ssh(standin_twin, host, "oc get nodes")
    assert no_config.returncode == 1 and "localhost:8080 was refused" in no_config.stderr


@pytest.mark.parametrize(
    ("backup", "restore", "refusal"),
    [
        (None, RESTORE, "no such directory"),
        (BACKUP, None, "has no cluster-restore.sh; copy it from a control-plane host"),
        (b"\x7fELF\x02\x01\x01\x00\x00\xb0", RESTORE, "is not a shell script (it is not text)"),
        ("#!/usr/bin/python3\nprint('hi')\n", RESTORE, "is not a shell script: its first line is"),
        ("#!/usr/bin/env bash\nif true; then\n", RESTORE, "bash cannot parse"),
        (
            BACKUP.replace("echo", f"echo $NODE_master_0_IP ${{NODE_{COPIED_FROM}_IP}}", 1),
            RESTORE,
            "several nodes",
        ),
    ],
)
def test_up_refuses_a_directory_without_both_scripts(
    tmp_path: Path, backup: str | bytes | None, restore: str | None, refusal: str
) -> None:
    given = tmp_path / "scripts"
    if backup is not None:
        scripts_dir(given, backup, restore)
    result = twin_up(tmp_path / "twin", "--scripts-from", str(given))
    assert result.returncode == 2
    assert result.stderr.startswith("drbot twin: --scripts-from") and refusal in result.stderr
    assert not (tmp_path / "twin").exists(), "nothing is started or written"


def test_the_drill_refuses_before_starting_anything(tmp_path: Path) -> None:
    drill = ["drill", "backup", "--dir", str(tmp_path / "twin"), "--scripts-from", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "drbot.cli", *drill], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 2
    assert "has no cluster-backup.sh" in result.stderr
    assert not (tmp_path / "twin").exists()


def test_scripts_copied_from_a_host_or_the_template_name_each_twin_host(tmp_path: Path) -> None:
    host = HostSpec(index=2, name="master-2.prod.example.com", address="127.0.0.13")
    copied = hostscripts.load(scripts_dir(tmp_path / "copied"))
    assert "NODE_master_2_prod_example_com_IP" in copied.for_host("cluster-backup.sh", host)
    assert COPIED_FROM not in copied.for_host("cluster-backup.sh", host)
    template = BACKUP.replace(COPIED_FROM, "NODE_ENVVAR_NAME")
    assert hostscripts.load(scripts_dir(tmp_path / "template", template)).for_host(
        "cluster-backup.sh", host
    ) == BACKUP.replace(COPIED_FROM, host.key)
    assert "${NODE_master_2_prod_example_com_IP}" in hostscripts.own().for_host("cluster-backup.sh", host)
    (scripts_dir(tmp_path / "directory-in-place", restore=None) / "cluster-restore.sh").mkdir()
    with pytest.raises(TwinError, match=r"cluster-restore\.sh is not a file"):
        hostscripts.load(tmp_path / "directory-in-place")
