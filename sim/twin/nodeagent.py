"""The API side of each twin host's kubelet, run in the twin's API server process.

For every control-plane host it reads the host's files (kubelet running? its PKI, its containers)
and does through the API what that kubelet would:

- identity: with no valid kubelet-client-current.pem, file a node-bootstrapper CSR (real PEM request,
  key kept here); once it is issued, write the client PEM, file a kubelet-serving CSR, and once that
  is issued write the server PEM. The Node is NotReady until both are done.
- heartbeat: the Node carries the serial of the client certificate the API last issued or saw
  (annotation twin.drbot.io/kubelet-client-serial). A heartbeat with any other certificate is
  refused and the Node goes NotReady: that is what a node whose certificate changed after an etcd
  backup sees once that backup is restored. Clearing the PEMs and restarting the kubelet fixes it.
- registration: a kubelet that (re)starts with a valid certificate re-creates its Node if deleted.
- mirror pods: etcd-/kube-apiserver-/kube-controller-manager-/kube-scheduler-<node> follow the
  host's manifests and containers (Running with READY n/m, CrashLoopBackOff, or gone).
- machines: a new control-plane Machine adopts a host whose Node is gone (reset: etcd stopped with
  an empty data dir, kubelet restarted so that it registers the Node again).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass

import yaml

from sim.kubeapi.certs import node_csr
from sim.kubeapi.errors import ApiError
from sim.kubeapi.operators.common import CSRS, NODES, PODS, condition, node_info, ready_condition
from sim.kubeapi.operators.csr import CsrController, bootstrap_csr, serving_csr
from sim.kubeapi.seed import ClusterFacts, node_object
from sim.kubeapi.store import ObjectStore, now_rfc3339
from sim.twin import disasters, hostfs, hostview, kubeletpki
from sim.twin.layout import HostSpec, TwinSpec
from sim.twin.lifecycle import ovn_db_dir

log = logging.getLogger("sim.twin.nodeagent")

SERIAL = disasters.SERIAL_ANNOTATION
MIRROR = "kubernetes.io/config.mirror"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
PERIOD = 0.5
OVN_DATABASES = ("ovnnb_db.db", "ovnsb_db.db")


@dataclass
class KubeletState:
    pid: int | None = None
    may_register: bool = False
    fresh: bool = False  # (re)started and has not looked at its certificate files yet
    csr: str | None = None
    csr_kind: str = ""
    key: bytes = b""


class NodeAgent:
    def __init__(self, spec: TwinSpec, store: ObjectStore, csr: CsrController, facts: ClusterFacts) -> None:
        self.spec = spec
        self.store = store
        self.csr = csr
        self.facts = facts
        self.kubelets: dict[str, KubeletState] = {}
        self.ovn_pods: dict[str, set[str]] = {}
        self._last = 0.0

    def manages(self, node_name: str) -> bool:
        return any(h.name == node_name for h in self.spec.hosts)

    def reconcile(self) -> None:
        now = time.monotonic()
        if now - self._last < PERIOD:
            return
        self._last = now
        pods = self.store.list(PODS)[0]
        for host in self.spec.hosts:
            self._kubelet(host)
            self._mirror_pods(host, pods)
            self._ovn_databases(host, pods)

    # ----- identity, heartbeat, registration -----

    def _kubelet(self, host: HostSpec) -> None:
        state = self.kubelets.get(host.short)
        pid = hostview.kubelet_pid(self.spec, host)
        if state is None:
            # The first look at a running twin is not a restart.
            state = self.kubelets[host.short] = KubeletState(pid=pid)
        elif pid is not None and pid != state.pid:
            state.pid, state.may_register, state.fresh = pid, True, True
            state.csr = None
        elif pid is None:
            state.pid = None
        node = self.store.try_get(NODES, None, host.name)
        if pid is None:
            if node is not None:
                self._ready(node, False, "Kubelet stopped posting node status.")
            return
        client = hostview.kubelet_cert(self.spec, host, "client")
        if state.csr is not None:
            self._follow_csr(host, state, node)
            return
        if client is None and not state.fresh:
            return  # deleted under a running kubelet: it keeps its certificate in memory until restarted
        state.fresh = False
        if not hostview.valid(client):
            self._file(host, state, "client")
            if node is not None:
                self._ready(node, False, f"kubelet has no valid client certificate; waiting for {state.csr}")
            return
        assert client is not None
        serial = format(client.serial_number, "x")
        if node is None:
            if not state.may_register:
                return
            node = self._register(host, serial)
        # The kubelet registers once when it starts; a Node deleted later stays deleted until a restart.
        state.may_register = False
        known = (node["metadata"].get("annotations") or {}).get(SERIAL)
        if known is None:
            node = self._annotate(host, serial)
            known = serial
        if known != serial:
            self._ready(
                node,
                False,
                f"kubelet client certificate {serial} is not the one this node registered with ({known}):"
                " delete /var/lib/kubelet/pki/*.pem and restart the kubelet",
            )
            return
        self._ready(node, True)

    def _file(self, host: HostSpec, state: KubeletState, kind: str) -> None:
        request, key = node_csr(host.name, serving=kind == "serving", addresses=[host.address])
        body = (
            bootstrap_csr(host.name, request)
            if kind == "client"
            else serving_csr(host.name, [host.address], request)
        )
        state.csr = self.store.create(CSRS, None, body)["metadata"]["name"]
        state.csr_kind, state.key = kind, key
        log.info("kubelet on %s filed %s CSR %s", host.short, kind, state.csr)

    def _follow_csr(self, host: HostSpec, state: KubeletState, node: dict | None) -> None:
        csr = self.store.try_get(CSRS, None, state.csr or "")
        if csr is None:
            state.csr = None  # deleted: file a new one next time
            return
        certificate = csr.get("status", {}).get("certificate")
        waiting = f"waiting for {state.csr_kind} CSR {state.csr}"
        if condition(csr, "Denied") is not None:
            waiting = f"{state.csr_kind} CSR {state.csr} was denied"
        if not certificate:
            if node is not None:
                self._ready(node, False, waiting)
            return
        kind = state.csr_kind
        pem_kind = "client" if kind == "client" else "server"
        kubeletpki.install(self.spec, host, pem_kind, base64.b64decode(certificate), state.key)
        state.csr = None
        if kind == "client":
            serial = format(hostview.kubelet_cert(self.spec, host, "client").serial_number, "x")  # type: ignore[union-attr]
            if node is None:
                self._register(host, serial)
            else:
                self._annotate(host, serial)
            self._file(host, state, "serving")

    def _register(self, host: HostSpec, serial: str) -> dict:
        index = self.spec.hosts.index(host)
        body = node_object(self.facts, host.name, host.address, "master", index)
        body["metadata"].setdefault("annotations", {})[SERIAL] = serial
        body["status"]["nodeInfo"] = node_info(host.name, self.facts.minor + 13)
        log.info("kubelet on %s registered node %s", host.short, host.name)
        try:
            return self.store.create(NODES, None, body)
        except ApiError as exc:
            if exc.code != 409:
                raise
            return self._annotate(host, serial)

    def _annotate(self, host: HostSpec, serial: str) -> dict:
        def change(node: dict) -> dict:
            node["metadata"].setdefault("annotations", {})[SERIAL] = serial
            return node

        return self.store.modify(NODES, None, host.name, change)

    def _ready(self, node: dict, ready: bool, message: str = "") -> None:
        current = condition(node, "Ready")
        wanted = ready_condition(ready, message)
        if current is not None and (current.get("status"), current.get("message")) == (
            wanted["status"],
            wanted["message"],
        ):
            return
        self.csr.set_ready(node["metadata"]["name"], ready, message)

    # ----- mirror pods -----

    def _mirror_pods(self, host: HostSpec, pods: list[dict]) -> None:
        if hostview.kubelet_pid(self.spec, host) is None:
            return  # nobody reports for a stopped kubelet: its mirror pods keep their last status
        state = hostview.containers(self.spec, host)
        wanted: dict[tuple[str, str], dict] = {}
        for entry, pod_entry in state["pods"].items():
            manifest = self._manifest(host, entry)
            if manifest is None or manifest["metadata"].get("name") not in STATIC_PODS:
                continue
            mirror = self._mirror(host, manifest, pod_entry, state["containers"])
            wanted[(mirror["metadata"]["namespace"], mirror["metadata"]["name"])] = mirror
        existing = {
            (p["metadata"]["namespace"], p["metadata"]["name"]): p
            for p in pods
            if p["spec"].get("nodeName") == host.name
            and any(p["metadata"]["name"] == f"{s}-{host.name}" for s in STATIC_PODS)
        }
        for key in existing:
            if key not in wanted:
                with contextlib.suppress(ApiError):
                    self.store.delete(PODS, key[0], key[1])
        for key, mirror in wanted.items():
            pod = existing.get(key)
            signature = mirror["metadata"]["annotations"]["twin.drbot.io/mirror"]
            if (
                pod is not None
                and (pod["metadata"].get("annotations") or {}).get("twin.drbot.io/mirror") == signature
            ):
                continue
            with contextlib.suppress(ApiError):
                if pod is None:
                    self.store.create(PODS, key[0], mirror)
                else:

                    def change(current: dict, mirror: dict = mirror) -> dict:
                        current["metadata"]["labels"] = mirror["metadata"]["labels"]
                        current["metadata"].setdefault("annotations", {}).update(
                            mirror["metadata"]["annotations"]
                        )
                        current["spec"]["containers"] = mirror["spec"]["containers"]
                        current["status"] = mirror["status"]
                        return current

                    self.store.modify(PODS, key[0], key[1], change)

    def _manifest(self, host: HostSpec, entry: str) -> dict | None:
        try:
            pod = yaml.safe_load(self.spec.in_host(host, f"/etc/kubernetes/manifests/{entry}").read_text())
        except (OSError, yaml.YAMLError):
            return None
        return pod if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict) else None

    def _mirror(self, host: HostSpec, manifest: dict, pod_entry: dict, records: list[dict]) -> dict:
        statuses = []
        for spec_container in manifest["spec"]["containers"]:
            mine = [
                c
                for c in records
                if c["pod_id"] == pod_entry["pod_id"] and c["name"] == spec_container["name"]
            ]
            last = max(mine, key=lambda c: c["attempt"]) if mine else None
            running = last is not None and last["state"] == hostview.RUNNING
            restarts = last["attempt"] if last else 0
            statuses.append(
                {
                    "name": spec_container["name"],
                    "image": spec_container.get("image", ""),
                    "imageID": spec_container.get("image", ""),
                    "ready": running,
                    "started": running,
                    "restartCount": restarts,
                    "containerID": f"cri-o://{last['id']}" if last else "",
                    "state": {"running": {"startedAt": now_rfc3339()}}
                    if running
                    else {"waiting": {"reason": "CrashLoopBackOff" if last else "ContainerCreating"}},
                }
            )
        all_ready = all(s["ready"] for s in statuses)
        signature = hashlib.sha256(
            json.dumps(
                [(s["name"], s["ready"], s["restartCount"]) for s in statuses] + [pod_entry["digest"]]
            ).encode()
        ).hexdigest()[:16]
        meta = manifest["metadata"]
        stamp = now_rfc3339()
        return {
            "metadata": {
                "name": f"{meta['name']}-{host.name}",
                "namespace": meta.get("namespace", "default"),
                "labels": dict(meta.get("labels") or {}),
                "annotations": {
                    MIRROR: pod_entry["digest"][:32],
                    "kubernetes.io/config.source": "file",
                    "twin.drbot.io/mirror": signature,
                },
            },
            "spec": {
                "nodeName": host.name,
                "hostNetwork": True,
                "containers": [
                    {"name": c["name"], "image": c.get("image", "")} for c in manifest["spec"]["containers"]
                ],
            },
            "status": {
                "phase": "Running" if any(s["ready"] for s in statuses) else "Pending",
                "hostIP": host.address,
                "podIP": host.address,
                "startTime": stamp,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if all_ready else "False",
                        "lastTransitionTime": stamp,
                    },
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                ],
                "containerStatuses": statuses,
            },
        }

    # ----- OVN-Kubernetes -----

    def _ovn_databases(self, host: HostSpec, pods: list[dict]) -> None:
        """Deleted OVN databases come back when the node's ovnkube-node pod is recreated."""
        directory = ovn_db_dir(self.facts.version)
        missing = [n for n in OVN_DATABASES if not self.spec.in_host(host, f"{directory}/{n}").exists()]
        running = [
            p["metadata"]["uid"]
            for p in pods
            if p["metadata"]["name"].startswith("ovnkube-node-")
            and p["spec"].get("nodeName") == host.name
            and p.get("status", {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ]
        if not missing:
            self.ovn_pods.pop(host.short, None)
            return
        seen = self.ovn_pods.setdefault(host.short, set(running))
        if any(uid not in seen for uid in running):
            hostfs.write_ovn_databases(self.spec, host, directory)
            self.ovn_pods.pop(host.short, None)

    # ----- machines -----

    def adopt_host(self, machine: dict) -> tuple[str, str] | None:
        """A free host for a new control-plane Machine: one whose Node is gone. Reset once."""
        addresses = {a.get("address") for a in machine.get("status", {}).get("addresses") or []}
        for host in self.spec.hosts:
            if host.address in addresses:
                return host.name, host.address
        for host in self.spec.hosts:
            if self.store.try_get(NODES, None, host.name) is None:
                self._reset(host)
                return host.name, host.address
        return None

    def _reset(self, host: HostSpec) -> None:
        """What a freshly provisioned control-plane host looks like to the etcd operator: no etcd pod,
        an empty data dir; its kubelet restarts (and registers its Node)."""
        log.info("machine API: host %s is reprovisioned", host.short)
        self.spec.in_host(host, "/etc/kubernetes/manifests/etcd-pod.yaml").unlink(missing_ok=True)
        shutil.rmtree(self.spec.in_host(host, "/var/lib/etcd"), ignore_errors=True)
        self.spec.in_host(host, "/var/lib/etcd").mkdir(mode=0o700)
        disasters.restart_kubelet(self.spec, host)
