"""A plain-text view of a channel as a person would read it: messages, threads, edits, ephemerals, files."""

from __future__ import annotations

import re
import time
from typing import Any

from sim.slack.workspace import Ephemeral, Message, Workspace


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _element(element: dict[str, Any]) -> str:
    if element.get("type") == "button":
        return f"[{_text_of(element.get('text'))}]"
    if element.get("type") == "image":
        return f"(image: {element.get('alt_text', '')})"
    return _text_of(element)


def render_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """One or more lines per block; buttons appear as [Label]."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {_text_of(block.get('text'))} ==")
        elif kind == "divider":
            lines.append("----")
        elif kind == "section":
            parts = [_text_of(block.get("text"))] if block.get("text") else []
            parts += [_text_of(f) for f in block.get("fields") or []]
            if isinstance(block.get("accessory"), dict):
                parts.append(_element(block["accessory"]))
            lines.extend("\n".join(p for p in parts if p).splitlines())
        elif kind == "context":
            lines.append(" · ".join(_element(e) for e in block.get("elements") or []))
        elif kind == "actions":
            lines.append(" ".join(_element(e) for e in block.get("elements") or []))
        elif kind == "markdown":
            lines.extend(str(block.get("text", "")).splitlines())
        else:
            lines.append(f"({kind} block)")
    return lines


def _mentions(ws: Workspace, line: str) -> str:
    """<@U123> as @name and <#C123|name> as #name, as Slack displays them."""

    def user(match: re.Match[str]) -> str:
        found = ws.users.get(match.group(1))
        return f"@{found.name}" if found else match.group(0)

    line = re.sub(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>", user, line)
    return re.sub(r"<#(C[A-Z0-9]+)\|([^>]*)>", r"#\2", line)


def _clock(ts: str) -> str:
    return time.strftime("%H:%M:%S", time.localtime(float(ts)))


def _body(ws: Workspace, text: str, blocks: list[dict[str, Any]] | None) -> list[str]:
    lines = render_blocks(blocks) if blocks else text.splitlines()
    return [_mentions(ws, line) for line in lines] or [""]


def _message_lines(ws: Workspace, message: Message, indent: str, show_edits: bool) -> list[str]:
    who = ws.users[message.user].name if message.user in ws.users else message.user or message.bot_id
    body = _body(ws, message.text, message.blocks)
    head = f"{indent}[{_clock(message.ts)}] {who}: {body[0]}"
    if message.edits:
        head += f"  (edited {len(message.edits)}x)"
    pad = " " * len(indent) + "    "
    lines = [head] + [f"{pad}{line}" for line in body[1:]]
    for file_id in message.files:
        uploaded = ws.files.get(file_id)
        if uploaded is not None:
            lines.append(f'{pad}[file {uploaded.filename} "{uploaded.title}" {uploaded.length} bytes]')
    if show_edits:
        for n, edit in enumerate(message.edits, 1):
            lines.append(f"{pad}~ version {n}: {_body(ws, edit.text, edit.blocks)[0]}")
    return lines


def _ephemeral_lines(ws: Workspace, eph: Ephemeral, indent: str) -> list[str]:
    who = ws.users[eph.user].name if eph.user in ws.users else eph.user
    body = _body(ws, eph.text, eph.blocks)
    head = f"{indent}[{_clock(eph.ts)}] (only visible to {who}) drbot: {body[0]}"
    if eph.edits:
        head += f"  (replaced {len(eph.edits)}x)"
    return [head] + [f"{indent}    {line}" for line in body[1:]]


def render_channel(ws: Workspace, channel: str, show_edits: bool = False) -> str:
    """Top-level messages and ephemerals in time order, each thread indented under its parent."""
    with ws.lock:
        chan = ws.channels[channel]
        items: list[tuple[float, Message | Ephemeral]] = [(float(m.ts), m) for m in ws.top_level(channel)]
        items += [(float(e.ts), e) for e in ws.ephemerals if e.channel == channel and not e.deleted]
        lines = [f"#{chan.name} ({chan.id})"]
        for _, item in sorted(items, key=lambda pair: pair[0]):
            if isinstance(item, Ephemeral):
                lines.extend(_ephemeral_lines(ws, item, "  "))
                continue
            lines.extend(_message_lines(ws, item, "  ", show_edits))
            for reply in ws.replies(channel, item.ts):
                lines.extend(_message_lines(ws, reply, "      └ ", show_edits))
        return "\n".join(lines)
