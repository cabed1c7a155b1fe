"""Static-pod operators (etcd, kube-apiserver, kube-controller-manager, kube-scheduler): revisions.

A new spec.forceRedeploymentReason cuts a new revision, which installer pods roll out one node at a
time, as library-go's revision and installer controllers do.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ApiError
from ..store import ObjectStore
from .common import CLUSTEROPERATORS, CONFIGMAPS, NODES, is_master, resource, set_condition

QUORUM_GUARD_KEY = "useUnsupportedUnsafeNonHANonProductionUnstableEtcd"


@dataclass(frozen=True)
class StaticPodOperator:
    plural: str
    namespace: str
    configmap: str
    clusteroperator: str


STATIC_POD_OPERATORS = (
    StaticPodOperator("etcds", "openshift-etcd", "etcd-pod", "etcd"),
    StaticPodOperator("kubeapiservers", "openshift-kube-apiserver", "kube-apiserver-pod", "kube-apiserver"),
    StaticPodOperator(
        "kubecontrollermanagers",
        "openshift-kube-controller-manager",
        "kube-controller-manager-pod",
        "kube-controller-manager",
    ),
    StaticPodOperator("kubeschedulers", "openshift-kube-scheduler", "kube-scheduler-pod", "kube-scheduler"),
)


def revision_message(node_statuses: list[dict], latest: int) -> tuple[bool, str]:
    """(all nodes at latest, message) worded as the 4.12-4.16 documentation shows it."""
    counts = Counter(int(status.get("currentRevision", 0)) for status in node_statuses)
    at_latest = counts.get(latest, 0)
    if node_statuses and at_latest == len(node_statuses):
        return True, f"{at_latest} nodes are at revision {latest}"
    parts = [f"{count} nodes are at revision {revision}" for revision, count in sorted(counts.items())]
    if at_latest == 0:
        parts.append(f"0 nodes have achieved new revision {latest}")
    return False, "; ".join(parts)


def quorum_guard_disabled(spec: dict) -> bool:
    overrides = spec.get("unsupportedConfigOverrides") or {}
    return isinstance(overrides, dict) and bool(overrides.get(QUORUM_GUARD_KEY))


# (operator plural, node name, revision) -> True once the node runs that revision. The twin puts the
# revision's files on the node's host and says when its static pod runs them.
Installer = Callable[[str, str, int], bool]


class StaticPodController:
    def __init__(self, store: ObjectStore, step_seconds: float, installer: Installer | None = None) -> None:
        self.store = store
        self.step_seconds = step_seconds
        self.installer = installer
        self._last_step: dict[str, float] = {}

    def reconcile(self) -> None:
        masters = [node["metadata"]["name"] for node in self.store.list(NODES)[0] if is_master(node)]
        for operator in STATIC_POD_OPERATORS:
            self._reconcile_one(operator, masters)

    def _observed_reason(self, operator: StaticPodOperator, reason: str) -> bool:
        """Record the reason in the operand's pod ConfigMap, as cluster-etcd-operator does; True if new."""
        cm = self.store.try_get(CONFIGMAPS, operator.namespace, operator.configmap)
        if cm is None:
            body = {
                "metadata": {"name": operator.configmap, "namespace": operator.namespace},
                "data": {"forceRedeploymentReason": reason},
            }
            with contextlib.suppress(ApiError):
                self.store.create(CONFIGMAPS, operator.namespace, body)
            return False
        if (cm.get("data") or {}).get("forceRedeploymentReason", "") == reason:
            return False

        def record(current: dict) -> dict:
            current.setdefault("data", {})["forceRedeploymentReason"] = reason
            return current

        self.store.modify(CONFIGMAPS, operator.namespace, operator.configmap, record)
        return True

    def _reconcile_one(self, operator: StaticPodOperator, masters: list[str]) -> None:
        res = resource("operator.openshift.io", "v1", operator.plural)
        obj = self.store.try_get(res, None, "cluster")
        if obj is None:
            return
        spec = obj.get("spec") or {}
        new_revision = self._observed_reason(operator, spec.get("forceRedeploymentReason", ""))
        now = time.monotonic()
        step_due = now - self._last_step.get(operator.plural, 0.0) >= self.step_seconds / 2
        stepped = False

        def change(current: dict) -> dict:
            nonlocal stepped
            status = current.setdefault("status", {})
            latest = int(status.get("latestAvailableRevision", 1))
            if new_revision:
                latest += 1
                status["latestAvailableRevision"] = latest
                status["latestAvailableRevisionReason"] = (
                    f'forced redeployment: "{spec.get("forceRedeploymentReason", "")}"'
                )
            statuses = _sync_nodes(status.get("nodeStatuses") or [], masters)
            if step_due:
                installed = (
                    (lambda node: self.installer(operator.plural, node, latest)) if self.installer else None
                )
                stepped = _advance_one(statuses, latest, installed)
            status["nodeStatuses"] = statuses
            done, message = revision_message(statuses, latest)
            conditions = status.get("conditions") or []
            conditions = set_condition(
                conditions,
                "NodeInstallerProgressing",
                "False" if done else "True",
                "AllNodesAtLatestRevision" if done else "",
                message,
            )
            active = sum(1 for s in statuses if int(s.get("currentRevision", 0)) > 0)
            conditions = set_condition(
                conditions,
                "StaticPodsAvailable",
                "True" if active else "False",
                "AsExpected" if active else "ZeroNodesActive",
                f"{active} nodes are active; {message}",
            )
            if operator.plural == "etcds":
                conditions = _quorum_guard_conditions(conditions, spec)
            status["conditions"] = conditions
            status["observedGeneration"] = current["metadata"].get("generation", 1)
            return current

        before = obj.get("status")
        updated = change(copy.deepcopy(obj))
        if updated.get("status") != before:
            updated = self.store.modify(res, None, "cluster", change)
        if stepped:
            self._last_step[operator.plural] = now
        self._mirror_clusteroperator(operator, updated)

    def _mirror_clusteroperator(self, operator: StaticPodOperator, obj: dict) -> None:
        co = self.store.try_get(CLUSTEROPERATORS, None, operator.clusteroperator)
        if co is None:
            return
        installer = next(
            (c for c in obj["status"].get("conditions", []) if c["type"] == "NodeInstallerProgressing"), None
        )
        if installer is None:
            return
        progressing = installer["status"]
        message = f"NodeInstallerProgressing: {installer['message']}"
        reason = "NodeInstaller" if progressing == "True" else "AsExpected"
        upgradeable = not quorum_guard_disabled(obj.get("spec") or {})

        def change(current: dict) -> dict:
            status = current.setdefault("status", {})
            conditions = set_condition(
                status.get("conditions") or [], "Progressing", progressing, reason, message
            )
            if operator.plural == "etcds":
                conditions = set_condition(
                    conditions,
                    "Upgradeable",
                    "True" if upgradeable else "False",
                    "AsExpected"
                    if upgradeable
                    else "UnsupportedConfigOverrides_UnsupportedConfigOverridesSet",
                    ""
                    if upgradeable
                    else f"UnsupportedConfigOverridesUpgradeable: setting: [{QUORUM_GUARD_KEY}]",
                )
            status["conditions"] = conditions
            return current

        if change(copy.deepcopy(co)) != co:
            self.store.modify(CLUSTEROPERATORS, None, operator.clusteroperator, change)


def _sync_nodes(statuses: list[dict], masters: list[str]) -> list[dict]:
    """One nodeStatus per control-plane node: lost nodes drop out, new ones start at revision 0."""
    by_name = {status["nodeName"]: dict(status) for status in statuses}
    return [by_name.get(name, {"nodeName": name, "currentRevision": 0}) for name in masters]


def _advance_one(statuses: list[dict], latest: int, installed: Callable[[str], bool] | None = None) -> bool:
    """Move the first lagging node half a step: installer started (targetRevision), then done (when
    `installed` says the node runs the revision, if given)."""
    for status in statuses:
        if int(status.get("currentRevision", 0)) >= latest:
            continue
        if int(status.get("targetRevision", 0)) != latest:
            status["targetRevision"] = latest
        elif installed is not None and not installed(status["nodeName"]):
            return False
        else:
            status["currentRevision"] = latest
            status.pop("targetRevision", None)
            status["lastFailedRevision"] = status.get("lastFailedRevision", 0)
        return True
    return False


def _quorum_guard_conditions(conditions: list[dict], spec: dict) -> list[dict]:
    """Record the quorum guard toggle where `oc get etcd/cluster -o yaml` shows it."""
    if quorum_guard_disabled(spec):
        conditions = set_condition(
            conditions,
            "UnsupportedConfigOverridesUpgradeable",
            "False",
            "UnsupportedConfigOverridesSet",
            f"setting: [{QUORUM_GUARD_KEY}]",
        )
        return set_condition(
            conditions,
            "EtcdQuorumGuardDisabled",
            "True",
            "UnsupportedUnsafeEtcd",
            "the etcd quorum guard is disabled by spec.unsupportedConfigOverrides",
        )
    conditions = set_condition(
        conditions, "UnsupportedConfigOverridesUpgradeable", "True", "NoUnsupportedConfigOverrides", ""
    )
    return set_condition(conditions, "EtcdQuorumGuardDisabled", "False", "AsExpected", "")
