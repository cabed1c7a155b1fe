"""Keeping message text inside Slack's limits: trim a fallback text, or split long text into messages.

Slack truncates `text` past 40,000 characters and chat.update refuses about 4,000 bytes, so drbot
keeps every message text under MESSAGE_BYTES and sends anything longer as several messages or a file.
"""

from __future__ import annotations

MESSAGE_BYTES = 3_900
"""Largest text (UTF-8 bytes) drbot puts in one message: under chat.update's ~4,000-byte limit."""


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that is at most `max_bytes` UTF-8 bytes (never splits a character)."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def fit_text(text: str, max_bytes: int = MESSAGE_BYTES) -> str:
    """`text` unchanged if it fits, else its head plus a note saying how much was left out."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    probe = f"\n… ({len(text)} more characters not shown)"
    head = _cut(text, max_bytes - len(probe.encode("utf-8")))
    newline = head.rfind("\n")
    if newline > len(head) * 3 // 4:
        head = head[:newline]
    return f"{head}\n… ({len(text) - len(head)} more characters not shown)"


def split_text(text: str, max_bytes: int = MESSAGE_BYTES) -> list[str]:
    """`text` as consecutive parts of at most `max_bytes` bytes, cut at line ends where possible."""
    if max_bytes < 16:
        raise ValueError(f"max_bytes must be at least 16, got {max_bytes}")
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > max_bytes:
            if current:
                parts.append(current)
                current = ""
            piece = _cut(line, max_bytes)
            parts.append(piece)
            line = line[len(piece) :]
        if len((current + line).encode("utf-8")) > max_bytes:
            parts.append(current)
            current = ""
        current += line
    if current or not parts:
        parts.append(current)
    return [p.rstrip("\n") or p for p in parts]
