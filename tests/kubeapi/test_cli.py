"""`python -m sim.kubeapi` as the twin starts it: seeds, serves, follows --up-file, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .conftest import MASTERS, EtcdProcess, wait_for

CLI_HOST = "127.0.0.76"


@pytest.fixture(scope="module")
def cli_server(etcd: EtcdProcess, workdir: Path) -> Iterator[tuple[subprocess.Popen, Path, Path]]:
    state = workdir / "cli"
    up_file = workdir / "cli-up"
    up_file.touch()
    masters = ",".join(f"{m.name}={m.address}" for m in MASTERS)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.kubeapi",
            f"--etcd-endpoints={etcd.endpoint}",
            f"--etcd-cacert={etcd.ca}",
            f"--etcd-cert={etcd.client_cert}",
            f"--etcd-key={etcd.client_key}",
            f"--state-dir={state}",
            f"--host={CLI_HOST}",
            "--port=6443",
            f"--masters={masters}",
            f"--up-file={up_file}",
            "--no-operators",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "listening on https://127.0.0.76:6443" in banner, banner
        yield proc, state / "kubeconfig", up_file
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_cli_serves_and_follows_the_up_file(cli_server: tuple[subprocess.Popen, Path, Path]) -> None:
    proc, kubeconfig, up_file = cli_server
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        core = client.CoreV1Api(api)
        nodes = wait_for(lambda: core.list_node().items, what="seeded nodes")
        assert {m.name for m in MASTERS} <= {n.metadata.name for n in nodes}  # type: ignore[union-attr]
        up_file.unlink()
        with pytest.raises(ApiException) as down:
            core.list_node()
        assert down.value.status == 503
        assert json.loads(down.value.body)["reason"] == "ServiceUnavailable"
        up_file.touch()
        assert core.read_namespace("openshift-etcd").metadata.name == "openshift-etcd"
    finally:
        api.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_cli_rejects_bad_node_lists(etcd: EtcdProcess, workdir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.kubeapi",
            f"--etcd-endpoints={etcd.endpoint}",
            f"--etcd-cacert={etcd.ca}",
            f"--etcd-cert={etcd.client_cert}",
            f"--etcd-key={etcd.client_key}",
            f"--state-dir={workdir / 'cli-bad'}",
            f"--host={CLI_HOST}",
            "--port=6444",
            "--masters=master-0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "is not NAME=ADDRESS" in result.stderr + result.stdout
