"""`python -m sim.twin.apiserver --dir DIR`: the twin's Kubernetes API, one process next to its hosts.

It serves on the API VIP (127.0.0.10k:6443) over the twin's etcd, is up only while some host runs
a kube-apiserver container and etcd has quorum, runs the simulated operators with the twin's
installer (revisions land on the hosts) and the node agent (the kubelets' side of the API), and
writes DIR/kubeconfig and each host's node kubeconfigs.

API blips (twin.json's `api.blips` and `api.restart`, from `drbot twin up --api-blips/--api-restart/
--calm`): while only one kube-apiserver container runs, or a kube-apiserver revision rolls out, API
requests get 500s, 429s and connection resets at that rate; and whenever another kube-apiserver
instance starts serving (a revision landed on the serving host, or the VIP's host lost its own),
connections are refused for `restart` seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from sim.kubeapi import ClusterFacts, KubeApiServer, NodeFacts, Timing
from sim.kubeapi.blips import BlipSettings
from sim.kubeapi.etcd import EtcdClient, EtcdUnavailable
from sim.twin import hostview
from sim.twin.installer import HostInstaller
from sim.twin.layout import STATE_DIR, HostSpec, TwinSpec, load_spec
from sim.twin.lifecycle import ApiOptions, read_state
from sim.twin.manifests import ETCD_REVISION, REVISIONS
from sim.twin.nodeagent import NodeAgent

API_PORT = 6443
NODE_KUBECONFIGS = "/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs"
PROBE_SECONDS = 0.5


class ControlPlaneProbe:
    """Up ⇔ some host runs a kube-apiserver container and etcd answers a quorum read; refreshed in
    the background so requests never wait for it. It also says whether only one kube-apiserver runs,
    and tells `on_new_instance` when another kube-apiserver instance starts serving the API."""

    def __init__(self, spec: TwinSpec) -> None:
        self.spec = spec
        pki = spec.pki_dir
        self.etcd = EtcdClient(
            [f"https://{h.address}:2379" for h in spec.hosts],
            ca_file=str(pki / "etcd-ca.crt"),
            cert_file=str(pki / "etcd-client.crt"),
            key_file=str(pki / "etcd-client.key"),
            deadline=1.0,
        )
        self.up = False
        self.single = False
        self.serving: str | None = None
        self.on_new_instance: list[Callable[[], None]] = []
        self._stop = threading.Event()

    def check(self) -> None:
        instances = {h.short: kube_apiserver_id(self.spec, h) for h in self.spec.hosts}
        running = {short: cid for short, cid in instances.items() if cid}
        self.single = len(running) == 1
        serving = running.get(self._vip_holder() or "") or next(iter(running.values()), None)
        if serving is not None and self.serving is not None and serving != self.serving:
            for notify in self.on_new_instance:
                notify()
        self.serving = serving or self.serving
        self.up = bool(running) and self._quorum()

    def _quorum(self) -> bool:
        try:
            self.etcd.revision()
        except EtcdUnavailable:
            return False
        return True

    def _vip_holder(self) -> str | None:
        """The host keepalived gave the API VIP: the load balancer sends requests to its kube-apiserver."""
        vip = f"{self.spec.api_vip}/32"
        for host in self.spec.hosts:
            addresses = [a.get("cidr") for i in _interfaces(self.spec, host) for a in i.get("addresses", [])]
            if vip in addresses:
                return host.short
        return None

    def run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(PROBE_SECONDS)

    def start(self) -> None:
        self.check()
        threading.Thread(target=self.run, name="control-plane-probe", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def kube_apiserver_id(spec: TwinSpec, host: HostSpec) -> str | None:
    """The id of the kube-apiserver container running on the host (a new one after each restart)."""
    return next(
        (
            str(c["id"])
            for c in hostview.containers(spec, host)["containers"]
            if c["name"] == "kube-apiserver" and c["state"] == hostview.RUNNING
        ),
        None,
    )


def _interfaces(spec: TwinSpec, host: HostSpec) -> list[dict]:
    try:
        return json.loads((spec.in_host(host, STATE_DIR) / "ip.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def facts_for(spec: TwinSpec, version: str) -> ClusterFacts:
    revisions = {
        "etcds": ETCD_REVISION,
        "kubeapiservers": REVISIONS["kube-apiserver"],
        "kubecontrollermanagers": REVISIONS["kube-controller-manager"],
        "kubeschedulers": REVISIONS["kube-scheduler"],
    }
    return ClusterFacts(
        masters=[NodeFacts(h.name, h.address) for h in spec.hosts],
        version=version,
        cluster_name=spec.name,
        api_vips=(spec.api_vip,),
        ingress_vips=(spec.ingress_vip,),
        revisions=revisions,
    )


def write_node_kubeconfigs(server: KubeApiServer, spec: TwinSpec) -> None:
    """The hosts' localhost(-recovery) kubeconfigs point at the API VIP: the twin's hosts share the
    machine's network, so 'localhost' on a host is not that host's kube-apiserver."""
    url = f"https://{spec.api_vip}:{API_PORT}"
    for host in spec.hosts:
        directory = spec.in_host(host, NODE_KUBECONFIGS)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("localhost", "localhost-recovery", "lb-int", "lb-ext"):
            server.write_kubeconfig(directory / f"{name}.kubeconfig", server=url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.twin.apiserver", description=__doc__)
    parser.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = load_spec(args.dir)
    options = read_state(spec.dir).get("api", {})
    version = options.get("version", "4.14.38")
    defaults = ApiOptions()
    blips = BlipSettings(
        rate=float(options.get("blips", defaults.blips)),
        restart=float(options.get("restart", defaults.restart)),
    )
    probe = ControlPlaneProbe(spec)
    facts = facts_for(spec, version)
    installer = HostInstaller(spec)
    agent_box: list[NodeAgent] = []
    server = KubeApiServer(
        etcd_endpoints=[f"https://{h.address}:2379" for h in spec.hosts],
        etcd_ca=spec.pki_dir / "etcd-ca.crt",
        etcd_cert=spec.pki_dir / "etcd-client.crt",
        etcd_key=spec.pki_dir / "etcd-client.key",
        state_dir=spec.dir / "kubeapi",
        host=spec.api_vip,
        port=API_PORT,
        control_plane_up=lambda: probe.up,
        openshift_version=version,
        installer_provisioned=options.get("platform", "installer-provisioned") == "installer-provisioned",
        timing=Timing.realistic() if options.get("realistic") else Timing.fast(),
        cluster_name=spec.name,
        # Started once the cluster is seeded: on a half-seeded cluster they would see no nodes.
        run_operators=False,
        installer=installer,
        host_managed=lambda node: any(h.name == node for h in spec.hosts),
        adopt_host=lambda machine: agent_box[0].adopt_host(machine) if agent_box else None,
        blips=blips,
        degraded=lambda: probe.single,
    )
    probe.on_new_instance.append(lambda: server.restart_apiserver(blips.restart))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    probe.start()
    server.start()
    server.write_kubeconfig(spec.dir / "kubeconfig")
    write_node_kubeconfigs(server, spec)
    while not stop.is_set():
        try:
            server.seed(facts)
            break
        except EtcdUnavailable as exc:
            logging.warning("seed: etcd not reachable yet (%s); retrying", exc)
            stop.wait(1)
    agent = NodeAgent(spec, server.store, server.operators.csr, facts)
    agent_box.append(agent)
    server.operators.add(agent)
    server.operators.start()
    (spec.dir / "kubeapi" / "ready").write_text(f"{server.url}\n")
    print(f"twin API listening on {server.url}; kubeconfig {spec.dir / 'kubeconfig'}", flush=True)
    stop.wait()
    server.stop()
    probe.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
