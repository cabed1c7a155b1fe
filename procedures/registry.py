"""Every procedure drbot can run, by the name used in `/dr` and `drbot plan`."""

from __future__ import annotations

from procedures import backup
from procedures.steps import Procedure

PROCEDURES: dict[str, Procedure] = {p.name: p for p in (backup.PROCEDURE,)}
