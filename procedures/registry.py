"""Every procedure drbot can run, by the name used in `/dr` and `drbot plan`."""

from __future__ import annotations

from procedures import backup, certs, manual_restore, restore
from procedures.steps import Procedure

PROCEDURES: dict[str, Procedure] = {
    procedure.name: procedure
    for procedure in (
        backup.PROCEDURE,
        certs.PROCEDURE,
        manual_restore.PROCEDURE,
        restore.PROCEDURE,
    )
}
