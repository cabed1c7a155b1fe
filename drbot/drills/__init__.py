"""Drill scenarios: one module per scenario, each with `run(stage, report)`."""

from __future__ import annotations

from collections.abc import Callable

from drbot.drills import backup, expired_certs, manual_etcd_restore, restore
from drbot.drills.common import Report
from drbot.stage import Stage

SCENARIOS: dict[str, Callable[[Stage, Report], None]] = {
    "backup": backup.run,
    "expired-certs": expired_certs.run,
    "manual-etcd-restore": manual_etcd_restore.run,
    "restore": restore.run,
}
