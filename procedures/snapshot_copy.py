"""Copy a file from one control-plane host to others through the worker, over the step's SSH commands.

The manual restore (5.4.2.3 step 2) needs the snapshot on every host. Control-plane hosts usually
cannot SSH to each other, so drbot reads the file from the host that has it and writes it to the
others. The only channel a step has is a command and its output, so:
- reads come back as lowercase hex: no redaction rule matches it (base64 of a snapshot holding
  Secrets would contain "LS0tLS1CRUdJT..." and be redacted, corrupting the copy);
- writes go in the command text as base64 (command text is never redacted), one chunk per
  command, small enough for the kernel's 128 KiB limit on one argument;
- the copy lands in `<path>.drbot-part`, is checked against the source's sha256 and only then
  renamed into place, so a half-written file never carries the snapshot's name.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence

from procedures.clusters import Host
from procedures.i18n import msg
from procedures.steps import CommandResult, StepContext, StepFailed

READ_CHUNK = 384 * 1024
"""Bytes per read: its hex (768 KiB) stays under the SSH executor's 1 MiB output cap."""
WRITE_CHUNK = 64 * 1024
"""Bytes per write: its base64 (~87 KiB) stays under the 128 KiB limit on one command argument."""
PART = ".drbot-part"


def copy_file(
    ctx: StepContext, source: Host, targets: Sequence[Host], path: str, sha256: str, size: int
) -> None:
    """Copy `path` from `source` to the same path on `targets`; raises StepFailed naming the host and why."""
    quoted, part = shlex.quote(path), shlex.quote(path + PART)
    directory = shlex.quote(path.rsplit("/", 1)[0] or "/")
    _on(ctx, targets, f"mkdir -p {directory} && rm -f {part} && : > {part} && chmod 600 {part}")
    offset = 0
    while offset < size:
        if ctx.aborted():
            _on(ctx, targets, f"rm -f {part}")
            raise StepFailed(msg("manual_restore.copy_aborted", path=path))
        (read,) = ctx.run(
            [source],
            f"dd if={quoted} bs={READ_CHUNK} skip={offset // READ_CHUNK} count=1 status=none "
            "| od -An -v -tx1 | tr -d ' \\n'",
            sudo=True,
            timeout=120,
        )
        if not read.ok:
            raise StepFailed(
                msg("manual_restore.copy_read_failed", host=source.name, path=path, reason=_why(read))
            )
        try:
            data = bytes.fromhex(read.stdout.strip())
        except ValueError:
            data = b""
        if not data:
            raise StepFailed(
                msg(
                    "manual_restore.copy_read_failed",
                    host=source.name,
                    path=path,
                    reason=f"no data at byte {offset} ({read.stdout[:80]!r})",
                )
            )
        for start in range(0, len(data), WRITE_CHUNK):
            encoded = base64.b64encode(data[start : start + WRITE_CHUNK]).decode()
            _on(ctx, targets, f"printf '%s' {encoded} | base64 -d >> {part}")
        offset += len(data)
        ctx.progress(msg("manual_restore.copy_progress", path=path, done=offset >> 20, total=size >> 20))
    results = ctx.run(targets, f"sha256sum {part}", sudo=True, timeout=300)
    wrong = [r.host for r in results if not r.ok or r.stdout.split()[:1] != [sha256]]
    if wrong:
        _on(ctx, targets, f"rm -f {part}")
        raise StepFailed(msg("manual_restore.copy_checksum", hosts=", ".join(wrong), path=path))
    _on(ctx, targets, f"mv -f {part} {quoted}")


def _on(ctx: StepContext, hosts: Sequence[Host], command: str) -> None:
    failed = [r for r in ctx.run(hosts, command, sudo=True, timeout=120) if not r.ok]
    if failed:
        reasons = "; ".join(f"{r.host}: {_why(r)}" for r in failed)
        raise StepFailed(msg("manual_restore.copy_write_failed", hosts=reasons))


def _why(result: CommandResult) -> str:
    if result.error:
        return result.error
    return f"exit {result.exit_code}: {(result.stderr or result.stdout).strip()[-200:]}"
