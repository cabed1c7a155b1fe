"""The state of a freshly installed 4.12-4.17 installer-provisioned cluster on AWS.

With VIPs (`ClusterFacts.api_vips`, `ingress_vips`), the Infrastructure object is that of an on-prem
(bare-metal) cluster whose keepalived holds them: `status.platformStatus.baremetal.apiServerInternalIPs`
and `ingressIPs` (with the singular fields 4.12+ still fills). The rest stays as on AWS.

Every object is created only if absent, so seeding is idempotent and never undoes a drill's changes.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field

from .errors import ApiError
from .operators.common import MASTER_LABEL, node_info, ready_condition, resource
from .operators.network import database_env
from .operators.workloads import WorkloadController
from .store import ObjectStore, now_rfc3339

RELEASE_IMAGE = "quay.io/openshift-release-dev/ocp-release@sha256:"
AWS_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@dataclass(frozen=True)
class NodeFacts:
    name: str
    address: str


@dataclass(frozen=True)
class ClusterFacts:
    """What the caller knows about the cluster; everything else is derived."""

    masters: list[NodeFacts]
    workers: list[NodeFacts] = field(
        default_factory=lambda: [
            NodeFacts("ip-10-0-150-21.ec2.internal", "10.0.150.21"),
            NodeFacts("ip-10-0-171-9.ec2.internal", "10.0.171.9"),
        ]
    )
    version: str = "4.14.38"
    cluster_name: str = "twin"
    base_domain: str = "example.com"
    infra_id: str = ""
    region: str = "us-east-1"
    api_vips: tuple[str, ...] = ()
    ingress_vips: tuple[str, ...] = ()
    proxy: dict = field(default_factory=dict)
    revisions: dict = field(
        default_factory=lambda: {
            "etcds": 7,
            "kubeapiservers": 12,
            "kubecontrollermanagers": 9,
            "kubeschedulers": 8,
        }
    )

    def __post_init__(self) -> None:
        if len(self.masters) < 1:
            raise ValueError("ClusterFacts.masters needs at least one control-plane node (name, address)")
        parts = self.version.split(".")
        if len(parts) != 3 or not all(part.isdigit() for part in parts) or parts[0] != "4":
            raise ValueError(f"version {self.version!r} must be an OpenShift z-stream like 4.14.38")

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])

    @property
    def infra(self) -> str:
        return self.infra_id or f"{self.cluster_name}-x7k2p"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _uid(text: str) -> str:
    return str(uuid.UUID(_digest(text)[:32]))


def _condition(type_: str, status: str, reason: str = "AsExpected", message: str = "") -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339(),
    }


def _platform(facts: ClusterFacts) -> tuple[dict, dict]:
    """Infrastructure `spec.platformSpec` and `status.platformStatus`: AWS, or bare metal with its VIPs."""
    if not facts.api_vips:
        return {"type": "AWS", "aws": {}}, {"type": "AWS", "aws": {"region": facts.region}}
    vips = {"apiServerInternalIPs": list(facts.api_vips), "ingressIPs": list(facts.ingress_vips)}
    status = {
        "apiServerInternalIP": facts.api_vips[0],
        "ingressIP": facts.ingress_vips[0] if facts.ingress_vips else "",
        **vips,
        "loadBalancer": {"type": "OpenShiftManagedDefault"},
    }
    return {"type": "BareMetal", "baremetal": vips}, {"type": "BareMetal", "baremetal": status}


def _container(name: str, image: str) -> dict:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}


def _running_pod_status(containers: list[dict], host_ip: str) -> dict:
    stamp = now_rfc3339()
    return {
        "phase": "Running",
        "hostIP": host_ip,
        "podIP": host_ip,
        "startTime": stamp,
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": stamp}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": c["image"],
                "ready": True,
                "started": True,
                "restartCount": 0,
                "containerID": "cri-o://" + _digest(host_ip + c["name"]),
                "state": {"running": {"startedAt": stamp}},
            }
            for c in containers
        ],
    }


def node_object(facts: ClusterFacts, name: str, address: str, role: str, index: int) -> dict:
    """A Ready Node as its kubelet registers it (also used when a twin host's kubelet re-registers)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "m6i.xlarge" if role == "master" else "m6i.large",
        "topology.kubernetes.io/region": facts.region,
        "topology.kubernetes.io/zone": AWS_ZONES[index % len(AWS_ZONES)],
        f"node-role.kubernetes.io/{role}": "",
    }
    if role == "master":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "providerID": f"aws:///{AWS_ZONES[index % 3]}/i-0{_digest(name)[:16]}",
            **({"taints": [{"key": MASTER_LABEL, "effect": "NoSchedule"}]} if role == "master" else {}),
        },
        "status": {
            "conditions": [
                _condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                _condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                _condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                ready_condition(True),
            ],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": node_info(name, facts.minor + 13),
        },
    }


class _Seeder:
    def __init__(self, store: ObjectStore, facts: ClusterFacts) -> None:
        self.store = store
        self.facts = facts
        self.created = 0

    def add(self, group_version: str, plural: str, obj: dict) -> dict | None:
        group, _, version = group_version.rpartition("/")
        res = resource(group, version, plural)
        try:
            created = self.store.create(res, obj["metadata"].get("namespace"), obj)
        except ApiError as exc:
            if exc.code == 409:
                return self.store.get(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            raise
        self.created += 1
        return created

    def image(self, component: str) -> str:
        return (
            f"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:{_digest(component + self.facts.version)}"
        )

    # ----- cluster-scoped configuration -----

    def namespaces(self) -> None:
        names = [
            "default",
            "kube-system",
            "openshift-config",
            "openshift-etcd",
            "openshift-etcd-operator",
            "openshift-kube-apiserver",
            "openshift-kube-controller-manager",
            "openshift-kube-scheduler",
            "openshift-ovn-kubernetes",
            "openshift-machine-api",
            "openshift-machine-config-operator",
            "openshift-cluster-machine-approver",
            "payments",
            "inventory",
        ]
        for name in names:
            labels = {"kubernetes.io/metadata.name": name}
            if name.startswith("openshift-"):
                labels["openshift.io/cluster-monitoring"] = "true"
            self.add("v1", "namespaces", {"metadata": {"name": name, "labels": labels}})

    def config(self) -> None:
        facts = self.facts
        digest = _digest(facts.version)
        image = RELEASE_IMAGE + digest
        channel = f"stable-4.{facts.minor}"
        self.add(
            "config.openshift.io/v1",
            "clusterversions",
            {
                "metadata": {"name": "version"},
                "spec": {"channel": channel, "clusterID": _uid(facts.infra)},
                "status": {
                    "desired": {"version": facts.version, "image": image, "channels": [channel]},
                    "history": [
                        {
                            "state": "Completed",
                            "version": facts.version,
                            "image": image,
                            "verified": False,
                            "startedTime": now_rfc3339(),
                            "completionTime": now_rfc3339(),
                        }
                    ],
                    "observedGeneration": 1,
                    "versionHash": digest[:12],
                    "availableUpdates": None,
                    "conditions": [
                        _condition("Available", "True", "", f"Done applying {facts.version}"),
                        _condition("Failing", "False"),
                        _condition("Progressing", "False", "", f"Cluster version is {facts.version}"),
                        _condition("RetrievedUpdates", "True"),
                    ],
                },
            },
        )
        for name in (
            "authentication",
            "dns",
            "etcd",
            "ingress",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "machine-api",
            "machine-config",
            "network",
            "openshift-apiserver",
        ):
            self.add(
                "config.openshift.io/v1",
                "clusteroperators",
                {
                    "metadata": {"name": name},
                    "spec": {},
                    "status": {
                        "conditions": [
                            _condition("Available", "True"),
                            _condition("Progressing", "False"),
                            _condition("Degraded", "False"),
                            _condition("Upgradeable", "True"),
                        ],
                        "versions": [{"name": "operator", "version": facts.version}],
                    },
                },
            )
        networking = {
            "clusterNetwork": [{"cidr": "10.128.0.0/14", "hostPrefix": 23}],
            "serviceNetwork": ["172.30.0.0/16"],
            "networkType": "OVNKubernetes",
        }
        self.add(
            "config.openshift.io/v1",
            "networks",
            {
                "metadata": {"name": "cluster"},
                "spec": networking,
                "status": {**networking, "clusterNetworkMTU": 8901},
            },
        )
        self.add(
            "operator.openshift.io/v1",
            "networks",
            {
                "metadata": {"name": "cluster"},
                "spec": {
                    "managementState": "Managed",
                    "clusterNetwork": networking["clusterNetwork"],
                    "serviceNetwork": networking["serviceNetwork"],
                    "defaultNetwork": {"type": "OVNKubernetes", "ovnKubernetesConfig": {"mtu": 8901}},
                },
                "status": {"conditions": [_condition("Available", "True")]},
            },
        )
        proxy_spec = {
            "trustedCA": {"name": ""},
            **{k: v for k, v in facts.proxy.items() if k in ("httpProxy", "httpsProxy", "noProxy")},
        }
        self.add(
            "config.openshift.io/v1",
            "proxies",
            {"metadata": {"name": "cluster"}, "spec": proxy_spec, "status": {}},
        )
        platform_spec, platform_status = _platform(facts)
        self.add(
            "config.openshift.io/v1",
            "infrastructures",
            {
                "metadata": {"name": "cluster"},
                "spec": {"cloudConfig": {"name": ""}, "platformSpec": platform_spec},
                "status": {
                    "apiServerURL": f"https://api.{facts.cluster_name}.{facts.base_domain}:6443",
                    "apiServerInternalURI": f"https://api-int.{facts.cluster_name}.{facts.base_domain}:6443",
                    "controlPlaneTopology": "HighlyAvailable",
                    "infrastructureTopology": "HighlyAvailable",
                    "etcdDiscoveryDomain": "",
                    "infrastructureName": facts.infra,
                    "platform": platform_status["type"],
                    "platformStatus": platform_status,
                },
            },
        )

    def static_pod_operators(self) -> None:
        masters = [m.name for m in self.facts.masters]
        for plural, revision in self.facts.revisions.items():
            count = len(masters)
            spec: dict = {
                "managementState": "Managed",
                "logLevel": "Normal",
                "operatorLogLevel": "Normal",
                "forceRedeploymentReason": "",
                "unsupportedConfigOverrides": None,
                "observedConfig": None,
            }
            if plural == "etcds":
                spec["controlPlaneHardwareSpeed"] = ""
            message = f"{count} nodes are at revision {revision}"
            self.add(
                "operator.openshift.io/v1",
                plural,
                {
                    "metadata": {"name": "cluster"},
                    "spec": spec,
                    "status": {
                        "observedGeneration": 1,
                        "readyReplicas": 0,
                        "latestAvailableRevision": revision,
                        "latestAvailableRevisionReason": "",
                        "nodeStatuses": [{"nodeName": name, "currentRevision": revision} for name in masters],
                        "conditions": [
                            _condition(
                                "NodeInstallerProgressing", "False", "AllNodesAtLatestRevision", message
                            ),
                            _condition(
                                "StaticPodsAvailable",
                                "True",
                                "AsExpected",
                                f"{count} nodes are active; {message}",
                            ),
                            _condition("NodeInstallerDegraded", "False"),
                        ],
                    },
                },
            )

    # ----- nodes, machines and their pods -----

    def nodes(self) -> None:
        for role, members in (("master", self.facts.masters), ("worker", self.facts.workers)):
            for index, node in enumerate(members):
                self.add("v1", "nodes", node_object(self.facts, node.name, node.address, role, index))

    def _machine(self, name: str, role: str, node: NodeFacts, zone: str, machineset: str | None) -> dict:
        facts = self.facts
        labels = {
            "machine.openshift.io/cluster-api-cluster": facts.infra,
            "machine.openshift.io/cluster-api-machine-role": role,
            "machine.openshift.io/cluster-api-machine-type": role,
            "machine.openshift.io/instance-type": "m6i.xlarge" if role == "master" else "m6i.large",
            "machine.openshift.io/region": facts.region,
            "machine.openshift.io/zone": zone,
        }
        if machineset:
            labels["machine.openshift.io/cluster-api-machineset"] = machineset
        instance = f"i-0{_digest(node.name)[:16]}"
        return {
            "metadata": {
                "name": name,
                "namespace": "openshift-machine-api",
                "labels": labels,
                "annotations": {"machine.openshift.io/instance-state": "running"},
                "finalizers": ["machine.machine.openshift.io"],
            },
            "spec": {
                "providerID": f"aws:///{zone}/{instance}",
                "providerSpec": {"value": self._provider_spec(role, zone)},
                "lifecycleHooks": {},
                "metadata": {},
            },
            "status": {
                "phase": "Running",
                "nodeRef": {"kind": "Node", "name": node.name},
                "addresses": [
                    {"type": "InternalIP", "address": node.address},
                    {"type": "InternalDNS", "address": node.name},
                ],
                "providerStatus": {"instanceId": instance, "instanceState": "running"},
            },
        }

    def _provider_spec(self, role: str, zone: str) -> dict:
        infra = self.facts.infra
        return {
            "apiVersion": "machine.openshift.io/v1beta1",
            "kind": "AWSMachineProviderConfig",
            "ami": {"id": "ami-0" + _digest(self.facts.version)[:16]},
            "instanceType": "m6i.xlarge" if role == "master" else "m6i.large",
            "placement": {"availabilityZone": zone, "region": self.facts.region},
            "subnet": {"filters": [{"name": "tag:Name", "values": [f"{infra}-private-{zone}"]}]},
            "securityGroups": [{"filters": [{"name": "tag:Name", "values": [f"{infra}-{role}-sg"]}]}],
            "iamInstanceProfile": {"id": f"{infra}-{role}-profile"},
            "userDataSecret": {"name": f"{role}-user-data"},
            "credentialsSecret": {"name": "aws-cloud-credentials"},
            "blockDevices": [{"ebs": {"volumeSize": 120, "volumeType": "gp3", "encrypted": True}}],
        }

    def machines(self) -> None:
        infra = self.facts.infra
        for index, node in enumerate(self.facts.masters):
            zone = AWS_ZONES[index % 3]
            self.add(
                "machine.openshift.io/v1beta1",
                "machines",
                self._machine(f"{infra}-master-{index}", "master", node, zone, None),
            )
        for index, node in enumerate(self.facts.workers):
            zone = AWS_ZONES[index % 3]
            machineset = f"{infra}-worker-{zone}"
            suffix = _digest(node.name)[:5]
            self.add(
                "machine.openshift.io/v1beta1",
                "machines",
                self._machine(f"{machineset}-{suffix}", "worker", node, zone, machineset),
            )
        for zone in AWS_ZONES[: max(1, len(self.facts.workers))]:
            name = f"{infra}-worker-{zone}"
            replicas = sum(1 for i in range(len(self.facts.workers)) if AWS_ZONES[i % 3] == zone)
            selector = {
                "machine.openshift.io/cluster-api-cluster": infra,
                "machine.openshift.io/cluster-api-machineset": name,
            }
            self.add(
                "machine.openshift.io/v1beta1",
                "machinesets",
                {
                    "metadata": {
                        "name": name,
                        "namespace": "openshift-machine-api",
                        "labels": {"machine.openshift.io/cluster-api-cluster": infra},
                    },
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": selector},
                        "template": {
                            "metadata": {
                                "labels": {
                                    **selector,
                                    "machine.openshift.io/cluster-api-machine-role": "worker",
                                }
                            },
                            "spec": {"providerSpec": {"value": self._provider_spec("worker", zone)}},
                        },
                    },
                    "status": {
                        "replicas": replicas,
                        "readyReplicas": replicas,
                        "availableReplicas": replicas,
                        "fullyLabeledReplicas": replicas,
                        "observedGeneration": 1,
                    },
                },
            )

    def static_pods(self) -> None:
        revision = self.facts.revisions.get("etcds", 1)
        for node in self.facts.masters:
            containers = [
                _container(name, self.image("etcd"))
                for name in ("etcdctl", "etcd", "etcd-metrics", "etcd-readyz")
            ]
            self.add(
                "v1",
                "pods",
                {
                    "metadata": {
                        "name": f"etcd-{node.name}",
                        "namespace": "openshift-etcd",
                        "labels": {
                            "app": "etcd",
                            "k8s-app": "etcd",
                            "etcd": "true",
                            "revision": str(revision),
                        },
                        "annotations": {"kubernetes.io/config.source": "file"},
                    },
                    "spec": {
                        "nodeName": node.name,
                        "hostNetwork": True,
                        "containers": containers,
                        "priorityClassName": "system-node-critical",
                    },
                    "status": _running_pod_status(containers, node.address),
                },
            )
            guard = [_container("guard", self.image("etcd-operator"))]
            self.add(
                "v1",
                "pods",
                {
                    "metadata": {
                        "name": f"etcd-guard-{node.name}",
                        "namespace": "openshift-etcd",
                        "labels": {"app": "guard"},
                    },
                    "spec": {"nodeName": node.name, "containers": guard},
                    "status": _running_pod_status(guard, node.address),
                },
            )
            kas = [
                _container(name, self.image("kube-apiserver"))
                for name in ("kube-apiserver", "kube-apiserver-cert-syncer", "kube-apiserver-insecure-readyz")
            ]
            self.add(
                "v1",
                "pods",
                {
                    "metadata": {
                        "name": f"kube-apiserver-{node.name}",
                        "namespace": "openshift-kube-apiserver",
                        "labels": {"app": "openshift-kube-apiserver", "apiserver": "true"},
                    },
                    "spec": {"nodeName": node.name, "hostNetwork": True, "containers": kas},
                    "status": _running_pod_status(kas, node.address),
                },
            )
            for kind in ("etcd-peer", "etcd-serving", "etcd-serving-metrics"):
                self.add(
                    "v1",
                    "secrets",
                    {
                        "metadata": {"name": f"{kind}-{node.name}", "namespace": "openshift-etcd"},
                        "type": "kubernetes.io/tls",
                        "data": {
                            "tls.crt": base64.b64encode(
                                f"{kind} certificate for {node.name}".encode()
                            ).decode(),
                            "tls.key": base64.b64encode(f"{kind} key for {node.name}".encode()).decode(),
                        },
                    },
                )
        for name in ("etcd-scripts", "restore-etcd-pod", "etcd-pod"):
            self.add(
                "v1",
                "configmaps",
                {
                    "metadata": {"name": name, "namespace": "openshift-etcd"},
                    "data": {"forceRedeploymentReason": ""},
                }
                if name == "etcd-pod"
                else {
                    "metadata": {"name": name, "namespace": "openshift-etcd"},
                    "data": {"pod.yaml": "", "etcd.env": ""},
                },
            )

    def ovn(self) -> None:
        template_spec = {
            "hostNetwork": True,
            "containers": [
                _container("ovn-controller", self.image("ovn-kubernetes")),
                _container("ovnkube-controller", self.image("ovn-kubernetes")),
            ],
        }
        self._daemonset(
            "openshift-ovn-kubernetes", "ovnkube-node", {"app": "ovnkube-node"}, template_spec, None
        )
        control = {
            "containers": [_container("ovnkube-cluster-manager", self.image("ovn-kubernetes"))],
            "nodeSelector": {MASTER_LABEL: ""},
        }
        if self.facts.minor >= 14:
            # 4.14 moved OVN-Kubernetes to interconnect: a control-plane Deployment replaces ovnkube-master.
            self.add(
                "apps/v1",
                "deployments",
                {
                    "metadata": {"name": "ovnkube-control-plane", "namespace": "openshift-ovn-kubernetes"},
                    "spec": {
                        "replicas": min(3, len(self.facts.masters)),
                        "selector": {"matchLabels": {"app": "ovnkube-control-plane"}},
                        "template": {
                            "metadata": {"labels": {"app": "ovnkube-control-plane"}},
                            "spec": control,
                        },
                    },
                },
            )
        else:
            env = database_env(sorted(m.address for m in self.facts.masters))
            control["containers"] = [
                {**_container(name, self.image("ovn-kubernetes")), "env": env}
                for name in ("northd", "nbdb", "sbdb", "ovnkube-master")
            ]
            self._daemonset(
                "openshift-ovn-kubernetes", "ovnkube-master", {"app": "ovnkube-master"}, control, None
            )

    def _daemonset(
        self, namespace: str, name: str, labels: dict, spec: dict, node_selector: dict | None
    ) -> None:
        if node_selector:
            spec = {**spec, "nodeSelector": node_selector}
        self.add(
            "apps/v1",
            "daemonsets",
            {
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": spec},
                    "updateStrategy": {"type": "RollingUpdate"},
                },
            },
        )

    # ----- applications -----

    def applications(self) -> None:
        for namespace, app, replicas, size in (
            ("payments", "payments-api", 2, "20Gi"),
            ("inventory", "inventory-web", 1, "5Gi"),
        ):
            labels = {"app": app}
            self.add(
                "apps/v1",
                "deployments",
                {
                    "metadata": {"name": app, "namespace": namespace, "labels": labels},
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "containers": [
                                    {
                                        "name": app,
                                        "image": f"registry.example.com/{app}:1.4.2",
                                        "ports": [{"containerPort": 8080}],
                                    }
                                ]
                            },
                        },
                    },
                },
            )
            self.add(
                "v1",
                "services",
                {
                    "metadata": {"name": app, "namespace": namespace, "labels": labels},
                    "spec": {
                        "selector": labels,
                        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                        "type": "ClusterIP",
                    },
                },
            )
            self.add(
                "v1",
                "configmaps",
                {
                    "metadata": {"name": f"{app}-config", "namespace": namespace},
                    "data": {"LOG_LEVEL": "info", "REGION": self.facts.region},
                },
            )
            self.add(
                "v1",
                "secrets",
                {
                    "metadata": {"name": f"{app}-db", "namespace": namespace},
                    "type": "Opaque",
                    "data": {
                        "username": base64.b64encode(app.encode()).decode(),
                        "password": base64.b64encode(_digest(app)[:20].encode()).decode(),
                    },
                },
            )
            pv_name = f"pvc-{_uid(namespace + app)}"
            claim = f"{app}-data"
            self.add(
                "v1",
                "persistentvolumes",
                {
                    "metadata": {"name": pv_name, "labels": {"topology.kubernetes.io/zone": AWS_ZONES[0]}},
                    "spec": {
                        "capacity": {"storage": size},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Delete",
                        "storageClassName": "gp3-csi",
                        "csi": {
                            "driver": "ebs.csi.aws.com",
                            "volumeHandle": f"vol-0{_digest(pv_name)[:16]}",
                            "fsType": "ext4",
                        },
                        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim},
                    },
                    "status": {"phase": "Bound"},
                },
            )
            self.add(
                "v1",
                "persistentvolumeclaims",
                {
                    "metadata": {
                        "name": claim,
                        "namespace": namespace,
                        "finalizers": ["kubernetes.io/pvc-protection"],
                    },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": size}},
                        "storageClassName": "gp3-csi",
                        "volumeName": pv_name,
                    },
                    "status": {
                        "phase": "Bound",
                        "accessModes": ["ReadWriteOnce"],
                        "capacity": {"storage": size},
                    },
                },
            )
            self.add(
                "v1",
                "events",
                {
                    "metadata": {"name": f"{app}.{_digest(app)[:16]}", "namespace": namespace},
                    "involvedObject": {
                        "kind": "Deployment",
                        "namespace": namespace,
                        "name": app,
                        "apiVersion": "apps/v1",
                    },
                    "reason": "ScalingReplicaSet",
                    "message": f"Scaled up replica set {app} to {replicas}",
                    "type": "Normal",
                    "source": {"component": "deployment-controller"},
                    "count": 1,
                    "firstTimestamp": now_rfc3339(),
                    "lastTimestamp": now_rfc3339(),
                },
            )

    def webhooks(self) -> None:
        for name, policy, namespace in (
            ("payments-policy.example.com", "Fail", "payments"),
            ("autoscaling.openshift.io", "Ignore", "openshift-machine-api"),
        ):
            self.add(
                "admissionregistration.k8s.io/v1",
                "validatingwebhookconfigurations",
                {
                    "metadata": {"name": name},
                    "webhooks": [
                        {
                            "name": f"validate.{name}",
                            "admissionReviewVersions": ["v1"],
                            "sideEffects": "None",
                            "failurePolicy": policy,
                            "timeoutSeconds": 10,
                            "clientConfig": {
                                "service": {
                                    "name": "webhook",
                                    "namespace": namespace,
                                    "path": "/validate",
                                    "port": 443,
                                }
                            },
                            "rules": [
                                {
                                    "apiGroups": [""],
                                    "apiVersions": ["v1"],
                                    "operations": ["CREATE", "UPDATE"],
                                    "resources": ["pods"],
                                    "scope": "*",
                                }
                            ],
                        }
                    ],
                },
            )
        self.add(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            {
                "metadata": {"name": "sidecar-injector.example.com"},
                "webhooks": [
                    {
                        "name": "inject.sidecar-injector.example.com",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Ignore",
                        "clientConfig": {
                            "service": {
                                "name": "injector",
                                "namespace": "payments",
                                "path": "/mutate",
                                "port": 443,
                            }
                        },
                    }
                ],
            },
        )


def seed_cluster(store: ObjectStore, facts: ClusterFacts) -> int:
    """Create the cluster's objects that are missing; returns how many were created (0 on a re-run)."""
    seeder = _Seeder(store, facts)
    seeder.namespaces()
    seeder.config()
    seeder.static_pod_operators()
    seeder.nodes()
    seeder.machines()
    seeder.static_pods()
    seeder.ovn()
    seeder.applications()
    seeder.webhooks()
    # Start the controller-owned pods right away, so a seeded cluster already looks settled.
    workloads = WorkloadController(store, pod_start_seconds=0)
    workloads.reconcile()
    workloads.reconcile()
    return seeder.created
