"""One catalog for every user-facing string, in English and Simplified Chinese.

The catalog lives in procedures/catalog/<language>/, one YAML file per area (core.yaml, then one per
procedure), with the same keys and placeholders in every language (tests/unit/test_catalog.py).

Text that crosses a process boundary (journal, timeline, Slack) travels as a `Msg`: a catalog key
plus its arguments, so each reader renders it in its own language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Msg:
    key: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "args": self.args}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Msg:
        return cls(key=data["key"], args=dict(data.get("args") or {}))


def msg(key: str, **args: Any) -> Msg:
    return Msg(key, args)


@cache
def catalog(language: str) -> dict[str, str]:
    """All entries of a language: catalog/<language>/*.yaml, one file per area (core, one per procedure)."""
    entries: dict[str, str] = {}
    folder = resources.files("procedures").joinpath(f"catalog/{language}")
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".yaml"):
            entries.update(yaml.safe_load(item.read_text(encoding="utf-8")) or {})
    return entries


def t(key: str | Msg, language: str = DEFAULT_LANGUAGE, /, **args: Any) -> str:
    """Render a catalog entry; a key missing in zh-CN falls back to English, a key missing everywhere shows.

    Arguments that are messages themselves (in their JSON form) are rendered in the same language.
    """
    if isinstance(key, Msg):
        args = {**key.args, **args}
        key = key.key
    template = catalog(language).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
    rendered = {k: t(Msg.from_json(v), language) if _is_msg(v) else v for k, v in args.items()}
    return template.format(**rendered) if rendered else template


def _is_msg(value: Any) -> bool:
    """A nested message travels as its JSON form, e.g. the reason inside "version unknown: {reason}"."""
    return isinstance(value, dict) and set(value) == {"key", "args"}
