"""The outbox: every Slack Web API call drbot makes is queued here, per channel, in Redis.

Producers (bot listeners, the notifier, workers) call Outbox methods, which only append JSON entries to
the channel's list; OutboxSender (bot/outbox_sender.py) sends them in order, paced and retried.

`Outbox(redis).within(pipe)` queues its calls into a caller's MULTI transaction instead, so they land
in Redis together with the caller's other writes or not at all (the notifier advances its cursor so).

A `slot` names a message (e.g. "run:abc:status"). The sender stores the ts of a successful post under
that slot, and resolves `slot=` on update and `thread_slot=` on any call at send time: a channel's
outbox is sent strictly in order, so the post always precedes its updates and thread replies.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from redis import Redis
from redis.client import Pipeline

from bot.text_limits import MESSAGE_BYTES, fit_text, split_text
from workers import keys
from workers.redact import redact

RESPONSES_CHANNEL = "~response_urls"
"""Queue for response_url posts given without a channel (Slack ids never contain "~")."""
MAX_SPLIT_PARTS = 4
"""Longer post text than this many messages goes to a file upload instead."""

OPS = ("post", "update", "ephemeral", "upload", "respond")


@dataclass
class Entry:
    """One queued call. `args` holds the call's own arguments; slots are resolved by the sender."""

    op: str
    channel: str
    args: dict[str, Any]
    slot: str | None = None
    thread_slot: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueued: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Entry:
        data = json.loads(raw)
        if data.get("op") not in OPS:
            raise ValueError(f"outbox entry has unknown op {data.get('op')!r}: {str(raw)[:200]}")
        return cls(**data)


def _redacted(value: Any) -> Any:
    """Every string that leaves for Slack goes through redact(): the last line of defence for secrets
    (step output is redacted where it is captured; this catches notes, API error bodies and the like)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: v if k == "content_b64" else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _check_channel(channel: str) -> None:
    if not channel or any(c.isspace() for c in channel):
        raise ValueError(f"a Slack channel id like C0123ABCD is needed, got {channel!r}")


class Outbox:
    def __init__(self, redis: Redis, transaction: Pipeline | None = None) -> None:
        self.redis = redis
        self.transaction = transaction

    def within(self, transaction: Pipeline) -> Outbox:
        """An outbox whose calls are queued into `transaction` (a pipeline in MULTI state); they reach
        Redis when its owner executes it."""
        return Outbox(self.redis, transaction)

    def _push(self, *entries: Entry) -> None:
        channel = entries[0].channel
        for entry in entries:
            entry.args = _redacted(entry.args)
        pipe = self.transaction if self.transaction is not None else self.redis.pipeline(transaction=True)
        pipe.rpush(keys.outbox(channel), *(e.to_json() for e in entries))
        pipe.sadd(keys.outbox_channels(), channel)
        if self.transaction is None:
            pipe.execute()

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_slot: str | None = None,
        slot: str | None = None,
    ) -> None:
        """chat.postMessage. Text alone that is too long for one message is split over a few messages
        (the first one gets `slot`) or, when longer still, uploaded as a file after a short excerpt."""
        _check_channel(channel)
        if blocks is not None or len(text.encode("utf-8")) <= MESSAGE_BYTES:
            args: dict[str, Any] = {"text": fit_text(text)}
            if blocks is not None:
                args["blocks"] = blocks
            self._push(Entry("post", channel, args, slot=slot, thread_slot=thread_slot))
            return
        parts = split_text(text)
        if len(parts) <= MAX_SPLIT_PARTS:
            entries = [Entry("post", channel, {"text": parts[0]}, slot=slot, thread_slot=thread_slot)]
            entries += [Entry("post", channel, {"text": p}, thread_slot=thread_slot) for p in parts[1:]]
            self._push(*entries)
            return
        excerpt = fit_text(text, 1_000)
        head = Entry(
            "post", channel, {"text": f"{excerpt}\n(full text attached as message.txt)"}, slot, thread_slot
        )
        self._push(head, self._upload_entry(channel, "message.txt", text, "Full text", thread_slot, None))

    def update(self, channel: str, slot: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """chat.update of the message posted under `slot`. Consecutive pending updates of one slot are
        collapsed by the sender into the last one."""
        _check_channel(channel)
        args: dict[str, Any] = {"text": fit_text(text)}
        if blocks is not None:
            args["blocks"] = blocks
        self._push(Entry("update", channel, args, slot=slot))

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_slot: str | None = None,
    ) -> None:
        """chat.postEphemeral: a message only `user` sees."""
        _check_channel(channel)
        args: dict[str, Any] = {"user": user, "text": fit_text(text)}
        if blocks is not None:
            args["blocks"] = blocks
        self._push(Entry("ephemeral", channel, args, thread_slot=thread_slot))

    def _upload_entry(
        self,
        channel: str,
        filename: str,
        content: str | bytes,
        title: str,
        thread_slot: str | None,
        comment: str | None,
    ) -> Entry:
        if isinstance(content, bytes):
            args: dict[str, Any] = {"content_b64": base64.b64encode(content).decode()}
        else:
            args = {"content": content}
        args.update({"filename": filename, "title": title})
        if comment:
            args["initial_comment"] = fit_text(comment)
        return Entry("upload", channel, args, thread_slot=thread_slot)

    def upload(
        self,
        channel: str,
        filename: str,
        content: str | bytes,
        title: str,
        thread_slot: str | None = None,
        comment: str | None = None,
    ) -> None:
        """files_upload_v2 into the channel (or the thread of `thread_slot`), e.g. long command output."""
        _check_channel(channel)
        if not filename:
            raise ValueError("an upload needs a filename, e.g. 'etcd-backup.log'")
        self._push(self._upload_entry(channel, filename, content, title, thread_slot, comment))

    def respond(self, response_url: str, payload: dict[str, Any], channel: str | None = None) -> None:
        """POST `payload` to an interaction's response_url. Give `channel` to keep it in order with that
        channel's other messages; otherwise it goes to a queue of its own."""
        if not response_url.startswith(("https://", "http://")):
            raise ValueError(f"response_url must be an http(s) URL, got {response_url!r}")
        queue = channel or RESPONSES_CHANNEL
        _check_channel(queue)
        body = dict(payload)
        if isinstance(body.get("text"), str):
            body["text"] = fit_text(body["text"])
        self._push(Entry("respond", queue, {"response_url": response_url, "payload": body}))

    def pending(self, channel: str) -> int:
        """How many calls wait in the channel's outbox."""
        return int(self.redis.llen(keys.outbox(channel)))
