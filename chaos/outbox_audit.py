"""What drbot asked to send to Slack against what Slack received, per channel and in order.

What drbot asked: every entry pushed to a channel's outbox (bot/outbox.py), read with MONITOR on the
suite's own redis-server, since an outbox list is emptied as it is sent. What Slack received: the
calls the Slack simulator answered with success. A post, an ephemeral message, an upload or a
response_url answer must arrive exactly once and in the order it was queued in its channel; the
updates of one message may be merged by the sender (only the newest pending one is sent), but must
never go back, and the last one queued must be the message's final state.
"""

from __future__ import annotations

import codecs
import json
import re
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sim.slack.workspace import Call
from workers import keys

OUTBOX = keys.outbox("")
QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
RESPONSES = "response_url"
"""response_url answers carry no channel in the simulator's record: they are compared among themselves."""


class OutboxWatch:
    """Records every RPUSH to an outbox list (MONITOR), from now until close()."""

    def __init__(self, port: int) -> None:
        self.entries: list[dict[str, Any]] = []
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._socket.sendall(b"MONITOR\r\n")
        self._lines = self._socket.makefile("rb")
        if not self._lines.readline().startswith(b"+OK"):
            raise RuntimeError("redis-server refused MONITOR")
        self._thread = threading.Thread(target=self._read, name="outbox watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._lines:
            words = [codecs.escape_decode(w)[0] for w in QUOTED.findall(line)]
            if len(words) > 2 and words[0].lower() == b"rpush" and words[1].startswith(OUTBOX.encode()):
                self.entries += [json.loads(word) for word in words[2:]]

    def close(self) -> None:
        self._socket.close()  # ends _read's loop
        self._thread.join(timeout=5)


Item = tuple[str, str]
"""(op, what identifies it: its text, or an upload's title)."""


def _queued(entry: dict[str, Any]) -> tuple[str, Item, str | None]:
    """(channel, item, slot of an update) of an outbox entry."""
    args, op = entry["args"], entry["op"]
    if op == "respond":
        return RESPONSES, (op, str(args["payload"].get("text", ""))), None
    if op == "upload":
        return entry["channel"], (op, str(args["title"])), None
    return entry["channel"], (op, str(args.get("text", ""))), entry.get("slot") if op == "update" else None


def _delivered(call: Call) -> tuple[str, Item, str | None] | None:
    """(channel, item, ts of an update) of a call Slack accepted; None for calls that are no message."""
    if call.status != 200 or call.error:
        return None
    args = call.args
    if call.method == "chat.postMessage":
        return str(args.get("channel")), ("post", str(args.get("text", ""))), None
    if call.method == "chat.postEphemeral":
        return str(args.get("channel")), ("ephemeral", str(args.get("text", ""))), None
    if call.method == "chat.update":
        return str(args.get("channel")), ("update", str(args.get("text", ""))), str(args.get("ts"))
    if call.method == "files.completeUploadExternal":
        files = args["files"] if isinstance(args["files"], list) else json.loads(args["files"])
        return str(args.get("channel_id")), ("upload", str(files[0].get("title"))), None
    if call.method == RESPONSES:
        payload = args.get("payload") or {}
        return RESPONSES, ("respond", str(payload.get("text", ""))), None
    return None


@dataclass
class Comparison:
    sent: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)


def compare(entries: list[dict[str, Any]], calls: list[Call], slot_ts: dict[str, str]) -> Comparison:
    """`slot_ts`: the Slack ts each slot (a message drbot updates) was posted as."""
    result = Comparison()
    queued: dict[str, list[Item]] = defaultdict(list)
    updates: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        channel, item, slot = _queued(entry)
        if slot is None:
            queued[channel].append(item)
        else:
            updates[slot].append(item[1])
    arrived: dict[str, list[Item]] = defaultdict(list)
    updated: dict[str, list[str]] = defaultdict(list)
    for call in calls:
        found = _delivered(call)
        if found is None:
            continue
        result.sent += 1
        channel, item, ts = found
        if ts is None:
            arrived[channel].append(item)
        else:
            updated[ts].append(item[1])
    for channel in sorted(set(queued) | set(arrived)):
        _in_order(result, channel, queued[channel], arrived[channel])
    for slot, texts in updates.items():
        _updates(result, slot, texts, updated.get(slot_ts.get(slot, ""), []))
    return result


def _in_order(result: Comparison, channel: str, queued: list[Item], arrived: list[Item]) -> None:
    """Match each arrival to the first unmatched queued item like it; arrivals must follow queue order."""
    taken = [False] * len(queued)
    highest = -1
    for item in arrived:
        index = next((i for i, q in enumerate(queued) if q == item and not taken[i]), None)
        if index is None:
            result.duplicated.append(f"{channel}: {item[0]} {item[1][:80]!r} arrived more often than queued")
            continue
        taken[index] = True
        if index < highest:
            result.out_of_order.append(f"{channel}: {item[0]} {item[1][:80]!r} arrived after a later one")
        highest = max(highest, index)
    for item, was_taken in zip(queued, taken, strict=True):
        if not was_taken:
            result.lost.append(f"{channel}: {item[0]} {item[1][:80]!r} never arrived")


def _updates(result: Comparison, slot: str, queued: list[str], arrived: list[str]) -> None:
    position = 0
    for text in arrived:
        try:
            position = queued.index(text, position)
        except ValueError:
            result.out_of_order.append(f"update of {slot}: {text[:80]!r} arrived out of the queued order")
    if queued and (not arrived or arrived[-1] != queued[-1]):
        result.lost.append(
            f"update of {slot}: the last one queued ({queued[-1][:80]!r}) is not what Slack shows"
        )
