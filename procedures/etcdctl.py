"""etcdctl on a control-plane host, got the way OpenShift's own scripts get it.

RHCOS has no etcdctl on the host: cluster-backup.sh downloads it into static-pod-resources/bin on the
host that took the backup, and nowhere else. Everywhere else drbot runs the etcdctl of the etcd
image through podman, with the snapshot's directory mounted read-only, as the runbook does.
"""

from __future__ import annotations

ETCDCTL_DIR = "/etc/kubernetes/static-pod-resources/bin"
"""Where cluster-backup.sh puts the etcdctl it downloaded."""
ETCD_POD_MANIFEST = "/etc/kubernetes/manifests/etcd-pod.yaml"
ETCDCTL_IMAGE = """jq -r '.spec.containers[]|select(.name=="etcdctl")|.image'"""
"""jq: the etcdctl container's image in an etcd pod manifest (the runbook's own expression)."""


def snapshot_status(snapshot: str) -> str:
    """Shell that prints `etcdctl snapshot status SNAPSHOT -w json`; `snapshot` is a shell word naming a
    file in the current directory (e.g. "$snap"). Says on stderr when there is no etcdctl to run."""
    return (
        f'if PATH="$PATH:{ETCDCTL_DIR}" command -v etcdctl >/dev/null; then '
        f'PATH="$PATH:{ETCDCTL_DIR}" ETCDCTL_API=3 etcdctl snapshot status {snapshot} -w json; '
        f"else img=$({ETCDCTL_IMAGE} {ETCD_POD_MANIFEST} 2>/dev/null); "
        'case "$img" in ""|-*) echo "no etcdctl on this host and no etcd image in its etcd pod" >&2;; '
        '*) podman run --rm --network none -v "$PWD:$PWD:ro,z" --entrypoint etcdctl "$img" '
        f'snapshot status "$PWD/"{snapshot} -w json;; esac; fi'
    )
