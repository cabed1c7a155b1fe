"""Who may do what on a cluster, and from where: the clusters file's approvers, operators and channels.

- Approvers (listed, or members of `approver_group`) may approve, start procedures and see the cluster.
- Operators (users, or members of the user groups listed in `operators`) may start procedures and see
  the cluster (its runs in `/dr status`, its entries in `/dr timeline`, its hosts in plans).
- Procedures start only from the cluster's `channels`.
A destructive approval re-reads the approver group's membership at the click: someone removed from
the group a minute ago must not approve a restore from a five-minute-old cache.
"""

from __future__ import annotations

from bot.deps import Deps
from procedures.clusters import Cluster


def may_approve(deps: Deps, user: str, cluster: Cluster, fresh: bool = False) -> bool:
    if user in cluster.approvers:
        return True
    return bool(cluster.approver_group) and user in deps.group_members(cluster.approver_group, fresh=fresh)


def may_operate(deps: Deps, user: str, cluster: Cluster) -> bool:
    """May start procedures on the cluster and see it."""
    if user in cluster.operators or may_approve(deps, user, cluster):
        return True
    groups = [entry for entry in cluster.operators if entry.startswith("S")]
    return any(user in deps.group_members(group) for group in groups)


def visible(deps: Deps, user: str, clusters: list[Cluster]) -> list[Cluster]:
    return [cluster for cluster in clusters if may_operate(deps, user, cluster)]
