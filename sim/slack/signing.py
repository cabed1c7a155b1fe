"""Slack request signing: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_headers(
    secret: str, body: str, content_type: str, signing: str = "valid", now: float | None = None
) -> dict[str, str]:
    """Headers for a request to the bot. `signing` is "valid", "unsigned", "bad" or "stale" (10 min old)."""
    if signing not in ("valid", "unsigned", "bad", "stale"):
        raise ValueError(f"signing must be valid, unsigned, bad or stale, got {signing!r}")
    headers = {"Content-Type": content_type}
    if signing == "unsigned":
        return headers
    moment = time.time() if now is None else now
    timestamp = str(int(moment - 600 if signing == "stale" else moment))
    sig = signature(secret, timestamp, body)
    if signing == "bad":
        sig = signature(secret + "-wrong", timestamp, body)
    headers["X-Slack-Request-Timestamp"] = timestamp
    headers["X-Slack-Signature"] = sig
    return headers
