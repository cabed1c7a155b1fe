"""`python -m sim.twin.apiserver --dir DIR`: the twin's Kubernetes API, one process next to its hosts.

It serves on the API VIP (127.0.0.10k:6443) over the twin's etcd, is up only while some host runs
a kube-apiserver container and etcd has quorum, runs the simulated operators with the twin's
installer (revisions land on the hosts) and the node agent (the kubelets' side of the API), and
writes DIR/kubeconfig and each host's node kubeconfigs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from sim.kubeapi import ClusterFacts, KubeApiServer, NodeFacts, Timing
from sim.kubeapi.etcd import EtcdClient, EtcdUnavailable
from sim.twin import hostview
from sim.twin.installer import HostInstaller
from sim.twin.layout import TwinSpec, load_spec
from sim.twin.lifecycle import read_state
from sim.twin.manifests import ETCD_REVISION, REVISIONS
from sim.twin.nodeagent import NodeAgent

API_PORT = 6443
NODE_KUBECONFIGS = "/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs"
PROBE_SECONDS = 0.5


class ControlPlaneProbe:
    """Up ⇔ some host runs a kube-apiserver container and etcd answers a quorum read; refreshed in
    the background so requests never wait for it."""

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
        self._stop = threading.Event()

    def check(self) -> bool:
        if not any(hostview.running(self.spec, h, "kube-apiserver") for h in self.spec.hosts):
            return False
        try:
            self.etcd.revision()
        except EtcdUnavailable:
            return False
        return True

    def run(self) -> None:
        while not self._stop.is_set():
            self.up = self.check()
            self._stop.wait(PROBE_SECONDS)

    def start(self) -> None:
        self.up = self.check()
        threading.Thread(target=self.run, name="control-plane-probe", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


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
    )
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
