"""SshPool.copy: a root-only file streamed from one host to others through the bot, checked by sha256."""

from __future__ import annotations

import os
from pathlib import Path

from tests.sshd_fixture import running_sshds
from workers.ssh import SshPool

ADDRESSES = ["127.0.0.66", "127.0.0.67", "127.0.0.68"]


def test_copy_a_root_only_file_to_other_hosts(tmp_path: Path) -> None:
    source = tmp_path / "snapshot.db"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(payload)
    source.chmod(0o600)
    # The "hosts" share this machine's filesystem, so each target gets its own destination.
    with running_sshds(ADDRESSES) as servers, SshPool() as pool:
        hosts = [server.host(f"master-{i}") for i, server in enumerate(servers)]
        for target in hosts[1:]:
            destination = tmp_path / target.name / "backup" / "snapshot.db"
            (result,) = pool.copy(hosts[0], str(source), [target], destination=str(destination), timeout=60)
            assert result.ok and result.host == target.name, result.error
            assert destination.read_bytes() == payload
            assert not destination.with_name("snapshot.db.drbot-part").exists()

        missing = pool.copy(hosts[0], str(tmp_path / "nope.db"), hosts[1:], timeout=30)
        assert [r.exit_code for r in missing] == [None, None]
        assert all("cannot read" in r.error and "nope.db" in r.error for r in missing)
