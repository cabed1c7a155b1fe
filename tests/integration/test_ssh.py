"""workers.ssh against real OpenSSH servers on 127.0.0.60-63 (needs root for sshd and useradd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from procedures.clusters import Host
from procedures.steps import CommandResult
from tests.sshd_fixture import (
    PASSWORD_SUDO_USER,
    Sshd,
    free_port,
    generate_key,
    running_sshd,
    running_sshds,
)
from workers.ssh import SshPool

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("sshd", path="/usr/sbin"), reason="needs root and /usr/sbin/sshd"
)

ADDRESSES = ("127.0.0.60", "127.0.0.61", "127.0.0.62")
UNUSED_ADDRESS = "127.0.0.63"
PORT_22_ADDRESS = "127.0.0.64"


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Sshd]]:
    with running_sshds(ADDRESSES) as started:
        yield started


@pytest.fixture(scope="module")
def hosts(servers: list[Sshd]) -> list[Host]:
    return [server.host(f"master-{i}") for i, server in enumerate(servers)]


@pytest.fixture
def pool() -> Iterator[SshPool]:
    with SshPool(connect_timeout=5.0) as opened:
        yield opened


def test_exit_code_and_separate_streams(pool: SshPool, hosts: list[Host]) -> None:
    result = pool.run(hosts[0], "echo out; echo err >&2; exit 3")
    assert (result.host, result.exit_code, result.stdout, result.stderr, result.error) == (
        "master-0",
        3,
        "out\n",
        "err\n",
        "",
    )
    assert pool.run(hosts[0], "true").ok


def test_sudo_runs_as_root_and_keeps_quoting_and_env(pool: SshPool, hosts: list[Host]) -> None:
    result = pool.run(
        hosts[0],
        """echo "$(id -u) it's $HTTPS_PROXY" '$NOT_EXPANDED'""",
        sudo=True,
        env={"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "a b"},
    )
    assert result.exit_code == 0, result
    assert result.stdout == "0 it's http://proxy.corp:3128 $NOT_EXPANDED\n"


def test_env_without_sudo_and_stdin(pool: SshPool, hosts: list[Host]) -> None:
    result = pool.run(hosts[0], 'echo "$GREETING"; wc -c', env={"GREETING": "hello world"}, stdin="12345")
    assert result.exit_code == 0, result
    assert result.stdout.split() == ["hello", "world", "5"]


def test_commands_reading_stdin_get_eof(pool: SshPool, hosts: list[Host]) -> None:
    result = pool.run(hosts[0], "cat; echo done", timeout=10)
    assert (result.exit_code, result.stdout) == (0, "done\n")


def test_sudo_that_needs_a_password_fails_fast_with_a_clear_error(pool: SshPool, hosts: list[Host]) -> None:
    host = Host(**{**hosts[0].__dict__, "user": PASSWORD_SUDO_USER})
    result = pool.run(host, "touch /root/should-not-exist", sudo=True, timeout=30)
    assert result.exit_code is None
    assert "sudo refused to run the command (sudo: a password is required)" in result.error
    assert f"give '{PASSWORD_SUDO_USER}' passwordless sudo" in result.error
    assert not Path("/root/should-not-exist").exists()


def test_bad_environment_variable_name_is_rejected(pool: SshPool, hosts: list[Host]) -> None:
    with pytest.raises(ValueError, match="not valid"):
        pool.run(hosts[0], "true", env={"A B": "x"})


def _running(pattern: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == pattern.encode():
                    return True
            except OSError:
                continue
    return False


@pytest.mark.parametrize("sudo", [False, True], ids=["user", "sudo"])
def test_timeout_returns_output_so_far_and_stops_the_command(
    pool: SshPool, hosts: list[Host], sudo: bool
) -> None:
    sleeper = f"sleep 37.{int(sudo)}5"
    result = pool.run(hosts[0], f"echo started; echo warn >&2; {sleeper}", sudo=sudo, timeout=1)
    assert result.exit_code is None
    assert result.error.startswith("master-0 (127.0.0.60:")
    assert "timed out after 1 s" in result.error
    assert (result.stdout, result.stderr) == ("started\n", "warn\n")
    deadline = time.monotonic() + 5
    while _running(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(sleeper)
    assert pool.run(hosts[0], "true").ok


def test_changed_host_key_is_refused_and_command_not_run(
    pool: SshPool, servers: list[Sshd], tmp_path: Path
) -> None:
    other = generate_key(tmp_path / "other_host_key")
    public = Path(f"{other}.pub").read_text().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{servers[1].address}]:{servers[1].port} {public[0]} {public[1]}\n")
    marker = tmp_path / "ran"
    result = pool.run(servers[1].host("master-1", known_hosts=str(known_hosts)), f"touch {marker}")
    assert result.exit_code is None
    assert result.error.startswith(f"master-1 ({servers[1].address}:{servers[1].port}): host key changed")
    assert "reinstalled or this is a man-in-the-middle" in result.error
    assert f"ssh-keygen -R '[{servers[1].address}]:{servers[1].port}' -f {known_hosts}" in result.error
    assert not marker.exists()


def test_hashed_known_hosts_entries_are_accepted(pool: SshPool, servers: list[Sshd], tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(servers[2].known_hosts_line())
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().startswith("|1|")
    result = pool.run(servers[2].host("master-2", known_hosts=str(known_hosts)), "echo ok")
    assert (result.exit_code, result.stdout) == (0, "ok\n"), result.error


def test_port_22_is_looked_up_by_bare_address(pool: SshPool) -> None:
    with running_sshd(PORT_22_ADDRESS, port=22) as server:
        assert server.known_hosts.read_text().startswith(f"{PORT_22_ADDRESS} ssh-ed25519 ")
        result = pool.run(server.host("master-22"), "echo $SSH_CONNECTION")
        pool.close()
    assert result.exit_code == 0, result.error
    assert result.stdout.split()[2:] == [PORT_22_ADDRESS, "22"]


def test_unknown_host_is_refused(pool: SshPool, servers: list[Sshd], tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    marker = tmp_path / "ran"
    result = pool.run(servers[1].host("master-1", known_hosts=str(known_hosts)), f"touch {marker}")
    assert result.exit_code is None
    assert "host key unknown" in result.error
    assert f"ssh-keyscan -p {servers[1].port} {servers[1].address} >> {known_hosts}" in result.error
    assert not marker.exists()
    assert not known_hosts.read_text()


def test_missing_known_hosts_file_and_key_file(pool: SshPool, hosts: list[Host], tmp_path: Path) -> None:
    missing = Host(**{**hosts[0].__dict__, "known_hosts": str(tmp_path / "nope")})
    assert f"known_hosts file {tmp_path / 'nope'} does not exist" in pool.run(missing, "true").error
    no_key = Host(**{**hosts[0].__dict__, "key": str(tmp_path / "id_missing")})
    assert f"SSH key {tmp_path / 'id_missing'} does not exist" in pool.run(no_key, "true").error


def test_wrong_key_is_refused_with_a_clear_error(pool: SshPool, servers: list[Sshd], tmp_path: Path) -> None:
    stranger = generate_key(tmp_path / "id_stranger")
    result = pool.run(servers[0].host("master-0", key=str(stranger)), "true")
    assert result.exit_code is None
    assert "login as 'drbot-test'" in result.error
    assert "authorized_keys" in result.error


def test_connection_refused(pool: SshPool, servers: list[Sshd]) -> None:
    port = free_port(UNUSED_ADDRESS)
    host = servers[0].host("master-9", address=UNUSED_ADDRESS, port=port)
    result = pool.run(host, "true")
    assert result.exit_code is None
    assert result.error.startswith(f"master-9 ({UNUSED_ADDRESS}:{port}): connection refused")


def test_connection_is_reused_across_commands_and_threads(pool: SshPool, hosts: list[Host]) -> None:
    seen = [pool.run(hosts[2], "echo $SSH_CONNECTION").stdout for _ in range(3)]
    threads = [
        threading.Thread(target=lambda: seen.append(pool.run(hosts[2], "echo $SSH_CONNECTION").stdout))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 7
    assert len(set(seen)) == 1, seen
    assert seen[0].split()[2] == "127.0.0.62"


def test_broken_connection_is_reopened_on_the_next_command(pool: SshPool, hosts: list[Host]) -> None:
    before = pool.run(hosts[1], "echo $SSH_CONNECTION").stdout
    # The command's parent is the user's sshd session process: killing it drops the connection.
    killed = pool.run(hosts[1], "kill -9 $PPID; sleep 5", timeout=10)
    assert killed.exit_code is None and killed.outcome_unknown
    assert "connection was lost while the command ran; outcome unknown" in killed.error, killed
    after = pool.run(hosts[1], "echo $SSH_CONNECTION")
    assert after.exit_code == 0, after
    assert after.stdout != before


def test_command_killed_by_a_signal_has_no_exit_code(pool: SshPool, hosts: list[Host]) -> None:
    result = pool.run(hosts[1], "echo partial; kill -9 $$")
    assert result.exit_code is None and not result.outcome_unknown
    assert result.stdout == "partial\n"
    assert "ended without an exit status (killed by a signal?)" in result.error


def test_interrupt_stops_running_root_commands_and_refuses_new_ones(hosts: list[Host]) -> None:
    """What a worker does when it loses its lease: the command on the host must really stop."""
    pool = SshPool()
    marker = f"/tmp/drbot-interrupt-{os.getpid()}"
    pool.run(hosts[0], f"rm -f {marker}", sudo=True)
    results: list[CommandResult] = []
    thread = threading.Thread(
        target=lambda: results.append(
            pool.run(hosts[0], f"echo started > {marker}; sleep 6.25; echo finished >> {marker}", sudo=True)
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not _running("sleep 6.25"):
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    pool.interrupt("this worker lost the lease of run r1")
    thread.join(timeout=10)
    [stopped] = results
    assert stopped.exit_code is None and stopped.outcome_unknown
    assert "drbot stopped the command (this worker lost the lease of run r1)" in stopped.error
    refused = pool.run(hosts[0], "true")
    assert refused.exit_code is None and "not sent: this worker lost the lease" in refused.error
    time.sleep(6.5)
    with SshPool() as check:
        written = check.run(hosts[0], f"cat {marker}; rm -f {marker}", sudo=True).stdout
    assert written == "started\n", "the command went on after the interrupt"
    assert not _running("sleep 6.25")


def test_preconnect_reports_failures_by_host(pool: SshPool, hosts: list[Host]) -> None:
    dead = Host(**{**hosts[0].__dict__, "name": "master-9", "address": UNUSED_ADDRESS})
    errors = pool.preconnect([*hosts, dead])
    assert list(errors) == ["master-9"]
    assert "connection refused" in errors["master-9"]


def test_fan_out_runs_in_parallel_and_keeps_host_order(pool: SshPool, hosts: list[Host]) -> None:
    # The first host finishes last, so completion order differs from the order asked for.
    command = (
        "date +%s%N; case $SSH_CONNECTION in *' 127.0.0.60 '*) sleep 0.6;; *) sleep 0.3;; esac; date +%s%N"
    )
    results = pool.run_many(hosts, command, timeout=30)
    assert [r.host for r in results] == ["master-0", "master-1", "master-2"]
    assert all(r.ok for r in results), results
    spans = [tuple(int(x) for x in r.stdout.split()) for r in results]
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    assert spans[0][1] - spans[0][0] > spans[1][1] - spans[1][0]


def test_serial_run_can_stop_at_the_first_failure(pool: SshPool, hosts: list[Host]) -> None:
    command = "case $SSH_CONNECTION in *' 127.0.0.61 '*) exit 4;; esac; echo ok"
    results = pool.run_many(hosts, command, serial=True, stop_on_failure=True)
    assert [(r.host, r.exit_code) for r in results] == [("master-0", 0), ("master-1", 4), ("master-2", None)]
    assert "not run: master-1 failed first (exit 4)" in results[2].error
    everywhere = pool.run_many(hosts, command, serial=True)
    assert [r.exit_code for r in everywhere] == [0, 4, 0]


def test_output_is_redacted(pool: SshPool, servers: list[Sshd]) -> None:
    result = pool.run(servers[0].host("master-0"), f"cat {servers[0].client_key}", sudo=True)
    assert result.exit_code == 0, result
    assert result.stdout == "[REDACTED PRIVATE KEY]\n"


def test_flooded_stderr_does_not_stall_and_output_is_capped(hosts: list[Host]) -> None:
    with SshPool(output_limit=64 * 1024) as pool:
        result = pool.run(hosts[0], "head -c 3000000 /dev/zero | tr '\\0' e >&2; seq 1 20000", timeout=60)
    assert result.exit_code == 0, result.error
    first, _, kept = result.stderr.partition("\n")
    assert first == "[drbot: output capped: the first 2934464 bytes were dropped, the last 65536 kept]"
    assert kept == "e" * 65536
    assert result.stdout.startswith("[drbot: output capped: the first ")
    assert result.stdout.endswith("\n19999\n20000\n")
