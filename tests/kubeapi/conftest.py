"""A real etcd (TLS, 127.0.0.70) and the simulated API server (127.0.0.71) for the kubeapi tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from sim.kubeapi import ClusterFacts, KubeApiServer, NodeFacts
from sim.kubeapi.certs import CertPair, issue_cert, make_ca, write_pair

ETCD_HOST = "127.0.0.70"
API_HOST = "127.0.0.71"
MASTERS = [
    NodeFacts("ip-10-0-1-11.ec2.internal", "127.0.0.11"),
    NodeFacts("ip-10-0-1-12.ec2.internal", "127.0.0.12"),
    NodeFacts("ip-10-0-1-13.ec2.internal", "127.0.0.13"),
]


class EtcdProcess:
    """One real etcd member with client TLS; restartable, and restorable from a snapshot.

    `cluster` maps member names to their loopback addresses (one member by default)."""

    def __init__(
        self,
        root: Path,
        name: str = "t0",
        host: str = ETCD_HOST,
        cluster: dict[str, str] | None = None,
        ca: CertPair | None = None,
    ) -> None:
        self.root = root
        self.name = name
        self.host = host
        self.cluster = cluster or {name: host}
        self.data_dir = root / "data"
        root.mkdir(parents=True, exist_ok=True)
        ca = ca or make_ca("etcd-signer")
        self.ca = root / "ca.crt"
        self.ca.write_bytes(ca.cert_pem)
        self.server_cert, self.server_key = root / "server.crt", root / "server.key"
        self.client_cert, self.client_key = root / "client.crt", root / "client.key"
        write_pair(issue_cert(ca, "etcd", [host, "localhost"]), self.server_cert, self.server_key)
        write_pair(
            issue_cert(ca, "kube-apiserver-etcd-client", [], server=False), self.client_cert, self.client_key
        )
        self.endpoint = f"https://{host}:2379"
        self.proc: subprocess.Popen | None = None

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{name}=http://{host}:2380" for name, host in self.cluster.items())

    def launch(self) -> None:
        log = open(self.root / "etcd.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            [
                "etcd",
                f"--name={self.name}",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.endpoint}",
                f"--advertise-client-urls={self.endpoint}",
                f"--listen-peer-urls=http://{self.host}:2380",
                f"--initial-advertise-peer-urls=http://{self.host}:2380",
                f"--initial-cluster={self.initial_cluster}",
                f"--cert-file={self.server_cert}",
                f"--key-file={self.server_key}",
                f"--trusted-ca-file={self.ca}",
                "--client-cert-auth",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.etcdctl("endpoint", "health", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy; see {self.root / 'etcd.log'}")

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "ETCDCTL_API": "3"}
        command = [
            "etcdctl",
            f"--endpoints={self.endpoint}",
            f"--cacert={self.ca}",
            f"--cert={self.client_cert}",
            f"--key={self.client_key}",
            "--dial-timeout=2s",
            "--command-timeout=5s",
            *args,
        ]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=check, timeout=30)

    def snapshot(self, path: Path) -> None:
        self.etcdctl("snapshot", "save", str(path))

    def restore(self, snapshot: Path) -> None:
        """What cluster-restore.sh does to the member: stop, fresh data dir from the snapshot, start."""
        self.stop()
        shutil.rmtree(self.data_dir)
        subprocess.run(
            [
                "etcdctl",
                "snapshot",
                "restore",
                str(snapshot),
                f"--name={self.name}",
                f"--data-dir={self.data_dir}",
                f"--initial-cluster={self.initial_cluster}",
                f"--initial-advertise-peer-urls=http://{self.host}:2380",
            ],
            env={**os.environ, "ETCDCTL_API": "3"},
            capture_output=True,
            check=True,
            timeout=30,
        )
        self.start()


class UpSwitch:
    """The "is a kube-apiserver running?" answer the twin gives; tests flip it."""

    def __init__(self) -> None:
        self.up = True

    def __call__(self) -> bool:
        return self.up


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kubeapi-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd(workdir: Path) -> Iterator[EtcdProcess]:
    proc = EtcdProcess(workdir / "etcd")
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def up_switch() -> UpSwitch:
    return UpSwitch()


@pytest.fixture(scope="session")
def api_server(etcd: EtcdProcess, workdir: Path, up_switch: UpSwitch) -> Iterator[KubeApiServer]:
    server = KubeApiServer(
        etcd_endpoints=[etcd.endpoint],
        etcd_ca=etcd.ca,
        etcd_cert=etcd.client_cert,
        etcd_key=etcd.client_key,
        state_dir=workdir / "kubeapi",
        host=API_HOST,
        port=6443,
        control_plane_up=up_switch,
        openshift_version="4.14.38",
    )
    try:
        server.start()
        server.seed(ClusterFacts(masters=MASTERS, version="4.14.38"))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api_client(api_server: KubeApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig_path))
    try:
        yield api
    finally:
        api.close()


def wait_for(check: Callable[[], object], timeout: float = 15, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
