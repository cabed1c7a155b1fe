"""Arguments typed in Slack (`key=value`), checked before a run starts: a refused start takes no lock
and writes nothing anywhere.

Paths end up in commands that run as root on control-plane hosts (`cluster-backup.sh` writes the
etcd snapshot and the static-pod resources, certificates and keys included, wherever it is told),
so a path must be a plain absolute path under the cluster's backup directory or one of the
`backup_prefixes` the clusters file allows. Host names must be the cluster's own.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping

from procedures.clusters import Cluster
from procedures.i18n import Msg, msg

Check = Callable[[str, Cluster], Msg | None]

_PLAIN_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+/?$")


def backup_path(value: str, cluster: Cluster) -> Msg | None:
    roots = ", ".join(cluster.backup_roots)
    if not _PLAIN_PATH.match(value) or posixpath.normpath(value) != value.rstrip("/"):
        return msg("params.path_form", value=value, roots=roots)
    if not any(
        value.rstrip("/") == root or value.startswith(root.rstrip("/") + "/") for root in cluster.backup_roots
    ):
        return msg("params.path_outside", value=value, roots=roots)
    return None


def control_plane_host(value: str, cluster: Cluster) -> Msg | None:
    names = [host.name for host in cluster.hosts]
    return None if value in names else msg("params.unknown_host", value=value, hosts=", ".join(names))


def problems(checks: Mapping[str, Check], given: Mapping[str, str], cluster: Cluster) -> list[Msg]:
    """What is wrong with the given arguments, each naming the rule and the allowed values."""
    found = []
    for name, value in given.items():
        check = checks.get(name)
        problem = check(value, cluster) if check else None
        if problem is not None:
            found.append(msg("params.problem", name=name, problem=problem.to_json()))
    return found
