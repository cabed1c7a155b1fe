"""response_url posts: replace or delete the original, or add an ephemeral / in-channel message.

Each URL is good for 5 uses within 30 minutes, as in Slack. Only `replace_original: true` replaces the
message a button sat on; without it a post adds a new message (ephemeral unless `in_channel`).
"""

from __future__ import annotations

import time
from typing import Any

from sim.slack.limits import block_errors, truncate_text
from sim.slack.workspace import Edit, Ephemeral, Message, ResponseUrl, Workspace

MAX_USES = 5
LIFETIME = 30 * 60


class ResponseUrls:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def issue(
        self, channel: str, user: str, original_ts: str | None = None, original_ephemeral: str | None = None
    ) -> str:
        token = self.ws.next_id("R")
        with self.ws.lock:
            self.ws.response_urls[token] = ResponseUrl(
                token, channel, user, time.time(), original_ts, original_ephemeral
            )
        return token

    def post(self, token: str, payload: Any) -> tuple[int, dict[str, Any]]:
        """Apply one post to a response_url; returns the HTTP status and JSON body Slack would send."""
        with self.ws.lock:
            url = self.ws.response_urls.get(token)
            if url is None:
                return 404, {"ok": False, "error": "invalid_url"}
            if time.time() - url.created > LIFETIME:
                return 404, {"ok": False, "error": "expired_url"}
            if url.uses >= MAX_USES:
                return 404, {"ok": False, "error": "used_url"}
            if not isinstance(payload, dict):
                return 400, {"ok": False, "error": "invalid_payload"}
            url.uses += 1
            if payload.get("delete_original"):
                return self._delete(url)
            blocks = payload.get("blocks")
            if blocks is not None and block_errors(blocks):
                return 400, {"ok": False, "error": "invalid_blocks", "errors": block_errors(blocks)}
            text, _ = truncate_text(str(payload.get("text") or ""))
            if not text and blocks is None:
                return 400, {"ok": False, "error": "no_text"}
            if payload.get("replace_original") and (url.original_ts or url.original_ephemeral):
                return self._replace(url, text, blocks)
            if payload.get("response_type") == "in_channel":
                thread_ts = payload.get("thread_ts") or None
                self.ws.channels[url.channel].messages.append(
                    Message(
                        ts=self.ws.next_ts(),
                        channel=url.channel,
                        text=text,
                        blocks=blocks,
                        user=self.ws.bot_user.id,
                        bot_id=self.ws.bot_id,
                        thread_ts=thread_ts,
                    )
                )
            else:
                self.ws.ephemerals.append(
                    Ephemeral(
                        id=self.ws.next_id("E"),
                        ts=self.ws.next_ts(),
                        channel=url.channel,
                        user=url.user,
                        text=text,
                        blocks=blocks,
                        source="response_url",
                    )
                )
            return 200, {"ok": True}

    def _delete(self, url: ResponseUrl) -> tuple[int, dict[str, Any]]:
        if url.original_ephemeral:
            eph = self.ws.find_ephemeral(url.original_ephemeral)
            if eph is not None:
                eph.deleted = True
                return 200, {"ok": True}
        if url.original_ts:
            message = self.ws.find_message(url.channel, url.original_ts)
            if message is not None:
                message.deleted = True
                return 200, {"ok": True}
        return 404, {"ok": False, "error": "message_not_found"}

    def _replace(
        self, url: ResponseUrl, text: str, blocks: list[dict[str, Any]] | None
    ) -> tuple[int, dict[str, Any]]:
        target: Message | Ephemeral | None = None
        if url.original_ephemeral:
            target = self.ws.find_ephemeral(url.original_ephemeral)
        elif url.original_ts:
            target = self.ws.find_message(url.channel, url.original_ts)
        if target is None:
            return 404, {"ok": False, "error": "message_not_found"}
        target.edits.append(Edit(ts=self.ws.next_ts(), text=target.text, blocks=target.blocks))
        target.text, target.blocks = text, blocks
        if isinstance(target, Message):
            target.edited_ts = self.ws.next_ts()
        return 200, {"ok": True}
