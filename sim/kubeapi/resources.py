"""The resource types the simulated API server serves: one line per type."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_WRITE = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def key(self, namespace: str | None, name: str) -> str:
        """The etcd key, laid out like the real kube-apiserver's so snapshots mean the same thing."""
        base = f"/kubernetes.io/{self.storage_name}/"
        return f"{base}{namespace}/{name}" if self.namespaced else f"{base}{name}"

    def prefix(self, namespace: str | None = None) -> str:
        base = f"/kubernetes.io/{self.storage_name}/"
        return f"{base}{namespace}/" if self.namespaced and namespace else base

    @property
    def storage_name(self) -> str:
        # Custom resources are stored under their group, core/built-in ones under the plural alone;
        # keeping machines.machine.openshift.io apart from a future cluster.x-k8s.io machines.
        builtin = self.group in _BUILTIN_GROUPS
        return self.plural if builtin else f"{self.group}/{self.plural}"


_BUILTIN_GROUPS = {"", "apps", "certificates.k8s.io", "admissionregistration.k8s.io"}

S = ("status",)

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), S),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), S),
    ResourceType("", "v1", "pods", "Pod", True, ("po",), S),
    ResourceType("", "v1", "services", "Service", True, ("svc",), S),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), S),
    ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), S),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), S),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale")),
    ResourceType(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        ("csr",),
        ("status", "approval"),
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    ResourceType("config.openshift.io", "v1", "clusterversions", "ClusterVersion", False, (), S),
    ResourceType("config.openshift.io", "v1", "clusteroperators", "ClusterOperator", False, ("co",), S),
    ResourceType("config.openshift.io", "v1", "networks", "Network", False, (), S),
    ResourceType("config.openshift.io", "v1", "proxies", "Proxy", False, (), S),
    ResourceType("config.openshift.io", "v1", "infrastructures", "Infrastructure", False, (), S),
    ResourceType("operator.openshift.io", "v1", "etcds", "Etcd", False, (), S),
    ResourceType("operator.openshift.io", "v1", "kubeapiservers", "KubeAPIServer", False, (), S),
    ResourceType(
        "operator.openshift.io", "v1", "kubecontrollermanagers", "KubeControllerManager", False, (), S
    ),
    ResourceType("operator.openshift.io", "v1", "kubeschedulers", "KubeScheduler", False, (), S),
    ResourceType("operator.openshift.io", "v1", "networks", "Network", False, (), S),
    ResourceType("machine.openshift.io", "v1beta1", "machines", "Machine", True, ("ma",), S),
    ResourceType(
        "machine.openshift.io", "v1beta1", "machinesets", "MachineSet", True, ("ms",), ("status", "scale")
    ),
)


def group_versions() -> dict[str, list[ResourceType]]:
    """Resources by "group/version" ("v1" for the core group), in table order."""
    out: dict[str, list[ResourceType]] = {}
    for res in RESOURCES:
        out.setdefault(res.group_version, []).append(res)
    return out


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for res in RESOURCES:
        if res.group == group and res.version == version and res.plural == plural:
            return res
    return None


def by_kind(api_version: str, kind: str) -> ResourceType:
    for res in RESOURCES:
        if res.group_version == api_version and res.kind == kind:
            return res
    raise KeyError(f"no resource for {api_version} {kind}")
