"""One twin for the whole session (tests share it), always taken down, even when a test fails.

These tests drive the twin by hand with a bare kubernetes client, as the runbook's contract, so they
ask for a calm API; the blips have their own tests (tests/kubeapi/test_blips.py) and drbot meets
them in the end-to-end tests and drills."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest
from kubernetes.client import (
    ApiClient,
    CertificatesV1Api,
    CoreV1Api,
    V1CertificateSigningRequest,
    V1CertificateSigningRequestCondition,
    V1CertificateSigningRequestStatus,
)
from kubernetes.config import new_client_from_config

from sim.twin import lifecycle
from sim.twin.layout import HostSpec, TwinSpec


@pytest.fixture(scope="session")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinSpec]:
    if os.geteuid() != 0:
        pytest.skip("the twin needs root")
    directory = tmp_path_factory.mktemp("twin")
    try:
        spec, _started = lifecycle.up(directory, name="twin", api=calm())
        yield spec
    finally:
        if (directory / "twin.json").exists():
            lifecycle.down(directory)


def calm(api: lifecycle.ApiOptions | None = None) -> lifecycle.ApiOptions:
    """The API options asked for, without blips or restart outages."""
    return dataclasses.replace(api or lifecycle.ApiOptions(), blips=0.0, restart=0.0)


def ssh(spec: TwinSpec, host: HostSpec, command: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run `command` as core on `host` with the real OpenSSH client, known_hosts enforced."""
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(spec.dir / "id_ed25519"),
            "-o",
            f"UserKnownHostsFile={spec.dir / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-p",
            str(spec.ssh_port),
            f"core@{host.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def paramiko_client(spec: TwinSpec, host: HostSpec) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(spec.dir / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=spec.ssh_port,
        username="core",
        key_filename=str(spec.dir / "id_ed25519"),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def run_paramiko(client: paramiko.SSHClient, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def crictl_names(spec: TwinSpec, host: HostSpec, grep: str) -> list[str]:
    """Container names of `sudo crictl ps | grep <grep>`, parsed from the table as the runbook reads it."""
    result = ssh(
        spec, host, f"sudo crictl ps | grep {shlex.quote(grep)} | grep -E -v 'operator|guard' || true"
    )
    return [line.split()[-3] for line in result.stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def own_twin(directory: Path, api: lifecycle.ApiOptions | None = None) -> Iterator[TwinSpec]:
    """A twin (hosts + API server) for one test module, taken down even when a test fails."""
    if os.geteuid() != 0:
        pytest.skip("the twin needs root")
    try:
        spec, _started = lifecycle.up(directory, name="twin", api=calm(api))
        yield spec
    finally:
        if (directory / "twin.json").exists():
            lifecycle.down(directory)


def kube(spec: TwinSpec, kubeconfig: Path | None = None) -> ApiClient:
    """A kubernetes ApiClient from the twin's DIR/kubeconfig (or another kubeconfig file)."""
    return new_client_from_config(str(kubeconfig or spec.dir / "kubeconfig"))


def ready(api: ApiClient, node: str) -> str:
    conditions = CoreV1Api(api).read_node(node).status.conditions or []
    return next((c.status for c in conditions if c.type == "Ready"), "Unknown")


def pending_csrs(api: ApiClient, signer: str) -> list[V1CertificateSigningRequest]:
    return [
        csr
        for csr in CertificatesV1Api(api).list_certificate_signing_request().items
        if csr.spec.signer_name == signer and not (csr.status and csr.status.conditions)
    ]


def approve(api: ApiClient, csr: V1CertificateSigningRequest) -> None:
    """What `oc adm certificate approve` does: an Approved condition through the approval subresource."""
    csr.status = V1CertificateSigningRequestStatus(
        conditions=[
            V1CertificateSigningRequestCondition(
                type="Approved",
                status="True",
                reason="KubectlApprove",
                message="This CSR was approved by kubectl certificate approve.",
            )
        ]
    )
    CertificatesV1Api(api).replace_certificate_signing_request_approval(csr.metadata.name, csr)
