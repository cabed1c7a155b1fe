"""The shared incident timeline: per incident (the incident channel), append-only, in a Redis stream.

Every command, step start and end, approval, rejection, abort and note lands here with who and when.
An incident's timeline is kept for DRBOT_RETENTION_DAYS after its last entry, as long as its runs.
Texts are stored as catalog messages (`Msg`) so each reader renders them in its own language; notes
typed by people are stored verbatim.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from procedures.i18n import Msg, t
from workers import keys
from workers.redact import redact, redact_value
from workers.runs import RETENTION

MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Entry:
    at: float
    kind: str
    who: str
    text: Msg | str
    run: str = ""

    def render(self, language: str = "en") -> str:
        return self.text if isinstance(self.text, str) else t(self.text, language)


class Timeline:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def append(self, incident: str, kind: str, who: str, text: Msg | str, run: str = "") -> Entry:
        text = redact(text) if isinstance(text, str) else _redact_msg(text)
        entry = Entry(at=time.time(), kind=kind, who=who, text=text, run=run)
        payload = text if isinstance(text, str) else json.dumps(text.to_json())
        fields = {
            "at": repr(entry.at),
            "kind": kind,
            "who": who,
            "run": run,
            "text": payload,
            "msg": "0" if isinstance(text, str) else "1",
        }
        self.redis.xadd(keys.timeline(incident), fields, maxlen=MAX_ENTRIES, approximate=True)
        self.redis.expire(keys.timeline(incident), RETENTION)
        return entry

    def entries(self, incident: str) -> list[Entry]:
        return [_decode(fields) for _, fields in self.redis.xrange(keys.timeline(incident))]

    def export_markdown(
        self, incident: str, language: str = "en", entries: Sequence[Entry] | None = None
    ) -> str:
        """The incident's timeline (or the given `entries` of it) as a Markdown table."""
        lines = [
            f"# Incident timeline: {incident}",
            "",
            "| time (UTC) | who | what | run |",
            "|---|---|---|---|",
        ]
        for entry in self.entries(incident) if entries is None else entries:
            when = datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            what = entry.render(language).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {when} | {entry.who} | {what} | {entry.run} |")
        return "\n".join(lines) + "\n"


def _redact_msg(text: Msg) -> Msg:
    """Secrets must not reach the timeline, however deep in a message's arguments they sit: an argument
    can be a message itself (an API error inside "version unknown: {reason}"), a list or a mapping."""
    return Msg(text.key, redact_value(text.args))


def _decode(fields: dict[bytes, bytes]) -> Entry:
    data: dict[str, Any] = {k.decode(): v.decode() for k, v in fields.items()}
    text: Msg | str = Msg.from_json(json.loads(data["text"])) if data["msg"] == "1" else data["text"]
    return Entry(at=float(data["at"]), kind=data["kind"], who=data["who"], text=text, run=data["run"])
