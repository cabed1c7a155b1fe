"""Keeping message text inside Slack's limits (bot/text_limits.py)."""

from __future__ import annotations

import pytest

from bot.text_limits import MESSAGE_BYTES, fit_text, split_text


def test_short_text_is_unchanged() -> None:
    assert fit_text("etcd backup done") == "etcd backup done"


def test_long_text_is_cut_with_a_note_and_fits() -> None:
    text = "\n".join(f"line {i}" for i in range(2000))
    fitted = fit_text(text)
    assert len(fitted.encode()) <= MESSAGE_BYTES
    assert fitted.startswith("line 0\nline 1\n")
    assert fitted.endswith("more characters not shown)")


def test_cut_never_splits_a_multibyte_character() -> None:
    fitted = fit_text("恢复" * 3000, 100)
    assert len(fitted.encode()) <= 100
    assert fitted.encode().decode() == fitted


def test_split_keeps_every_line_in_order() -> None:
    lines = [f"row {i:04d} " + "y" * 60 for i in range(200)]
    parts = split_text("\n".join(lines), 1000)
    assert all(len(p.encode()) <= 1000 for p in parts)
    assert "\n".join(parts) == "\n".join(lines)


def test_split_cuts_a_line_longer_than_a_message() -> None:
    parts = split_text("a" * 2500, 1000)
    assert parts == ["a" * 1000, "a" * 1000, "a" * 500]


def test_split_refuses_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        split_text("x", 4)
