"""Latency of the twin's API server as the kubernetes client sees it, and how fast it fails without etcd.

Starts a real etcd (TLS, 127.0.0.77) and the API server (127.0.0.78), seeds a cluster, then prints
percentiles per operation. Run: `uv run python bench/kubeapi_latency.py [--requests 200]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from sim.kubeapi import ClusterFacts, KubeApiServer, NodeFacts, seed_cluster
from sim.kubeapi.certs import CertPair, issue_cert, make_ca, write_pair

ETCD_HOST = "127.0.0.77"
API_HOST = "127.0.0.78"
QUORUM_HOST = "127.0.0.79"


def start_member(
    root: Path, name: str, host: str, ports: tuple[int, int], cluster: str, ca: CertPair
) -> Member:
    """One etcd member with client TLS; `ports` is (client, peer), `cluster` the --initial-cluster value."""
    root.mkdir(parents=True)
    (root / "ca.crt").write_bytes(ca.cert_pem)
    write_pair(issue_cert(ca, "etcd", [host]), root / "server.crt", root / "server.key")
    write_pair(issue_cert(ca, "client", [], server=False), root / "client.crt", root / "client.key")
    endpoint = f"https://{host}:{ports[0]}"
    proc = subprocess.Popen(
        [
            "etcd",
            f"--name={name}",
            f"--data-dir={root / 'data'}",
            f"--listen-client-urls={endpoint}",
            f"--advertise-client-urls={endpoint}",
            f"--listen-peer-urls=http://{host}:{ports[1]}",
            f"--initial-advertise-peer-urls=http://{host}:{ports[1]}",
            f"--initial-cluster={cluster}",
            f"--cert-file={root / 'server.crt'}",
            f"--key-file={root / 'server.key'}",
            f"--trusted-ca-file={root / 'ca.crt'}",
            "--client-cert-auth",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Member(root, endpoint, proc)


class Member:
    def __init__(self, root: Path, endpoint: str, proc: subprocess.Popen) -> None:
        self.root = root
        self.endpoint = endpoint
        self.proc = proc

    def wait_healthy(self) -> None:
        health = [
            "etcdctl",
            f"--endpoints={self.endpoint}",
            f"--cacert={self.root / 'ca.crt'}",
            f"--cert={self.root / 'client.crt'}",
            f"--key={self.root / 'client.key'}",
            "endpoint",
            "health",
        ]
        env = {**os.environ, "ETCDCTL_API": "3"}
        for _ in range(100):
            if subprocess.run(health, env=env, capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise SystemExit(f"etcd at {self.endpoint} did not become healthy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def server_for(members: list[Member], root: Path, host: str) -> KubeApiServer:
    first = members[0].root
    return KubeApiServer(
        etcd_endpoints=[m.endpoint for m in members],
        etcd_ca=first / "ca.crt",
        etcd_cert=first / "client.crt",
        etcd_key=first / "client.key",
        state_dir=root,
        host=host,
    )


def measure(label: str, count: int, call: Callable[[int], object]) -> None:
    samples = []
    for index in range(count):
        start = time.perf_counter()
        call(index)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(
        f"{label:<34} n={count:<4} p50={statistics.median(samples):6.2f} ms  p95={p95:6.2f} ms  "
        f"max={samples[-1]:6.2f} ms"
    )


def watch_delay(core: client.CoreV1Api, count: int) -> None:
    """Time from sending a create to the watcher seeing its ADDED event."""
    created_at: dict[str, float] = {}
    delays: list[float] = []
    done = threading.Event()
    stream = watch.Watch()

    def consume() -> None:
        for event in stream.stream(core.list_namespaced_config_map, "bench", timeout_seconds=60):
            name = event["object"].metadata.name
            if event["type"] == "ADDED" and name in created_at:
                delays.append((time.perf_counter() - created_at[name]) * 1000)
                if len(delays) == count:
                    stream.stop()
                    done.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    time.sleep(0.5)
    for index in range(count):
        name = f"w-{index}"
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
        created_at[name] = time.perf_counter()
        core.create_namespaced_config_map("bench", body)
        time.sleep(0.01)
    done.wait(30)
    delays.sort()
    print(
        f"{'watch: create -> ADDED event':<34} n={len(delays):<4} p50={statistics.median(delays):6.2f} ms  "
        f"max={delays[-1]:6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kubeapi-bench-"))
    etcd = start_member(
        root / "etcd", "b0", ETCD_HOST, (2379, 2380), f"b0=http://{ETCD_HOST}:2380", make_ca("bench")
    )
    etcd.wait_healthy()
    server = server_for([etcd], root / "api", API_HOST)
    try:
        server.start()
        masters = [NodeFacts(f"master-{i}", f"127.0.0.{11 + i}") for i in range(3)]
        start = time.perf_counter()
        created = seed_cluster(server.store, ClusterFacts(masters=masters))
        print(f"seed: {created} objects in {(time.perf_counter() - start) * 1000:.0f} ms")
        api = config.new_client_from_config(config_file=str(server.kubeconfig_path))
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bench")))
        n = args.requests
        measure("get namespace", n, lambda i: core.read_namespace("payments"))
        measure("list pods, all namespaces", n, lambda i: core.list_pod_for_all_namespaces())
        measure(
            "list pods by label",
            n,
            lambda i: core.list_namespaced_pod("openshift-etcd", label_selector="k8s-app=etcd"),
        )
        measure(
            "create configmap",
            n,
            lambda i: core.create_namespaced_config_map(
                "bench", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c-{i}"), data={"i": str(i)})
            ),
        )
        measure(
            "merge-patch etcd/cluster",
            n,
            lambda i: custom.patch_cluster_custom_object(
                "operator.openshift.io",
                "v1",
                "etcds",
                "cluster",
                {"spec": {"logLevel": "Normal" if i % 2 else "Debug"}},
            ),
        )
        measure("delete configmap", n, lambda i: core.delete_namespaced_config_map(f"c-{i}", "bench"))
        watch_delay(core, min(n, 50))
        etcd.stop()

        def down(_: int) -> None:
            try:
                core.read_namespace("payments", _request_timeout=10)
            except ApiException as exc:
                assert exc.status == 503

        measure("503 with etcd stopped", 10, down)
        api.close()
    finally:
        server.stop()
        etcd.stop()
    try:
        quorum_loss(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def quorum_loss(root: Path) -> None:
    """Three members (one address, three port pairs); stop two and time the 503s."""
    ca = make_ca("bench-quorum")
    ports = {"q0": (2479, 2480), "q1": (2579, 2580), "q2": (2679, 2680)}
    cluster = ",".join(f"{name}=http://{QUORUM_HOST}:{peer}" for name, (_, peer) in ports.items())
    members = [start_member(root / name, name, QUORUM_HOST, p, cluster, ca) for name, p in ports.items()]
    server = server_for(members, root / "quorum-api", API_HOST)
    try:
        for member in members:
            member.wait_healthy()
        server.start()
        api = config.new_client_from_config(config_file=str(server.kubeconfig_path))
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="quorum")))
        members[0].stop()
        measure("get, 1 of 3 members down", 20, lambda i: core.read_namespace("quorum"))

        def down(_: int) -> None:
            try:
                core.read_namespace("quorum", _request_timeout=10)
            except ApiException as exc:
                assert exc.status == 503
            else:
                raise AssertionError("expected 503 without quorum")

        members[1].stop()
        measure("503 without quorum (2 of 3 down)", 5, down)
        api.close()
    finally:
        server.stop()
        for member in members:
            member.stop()


if __name__ == "__main__":
    main()
