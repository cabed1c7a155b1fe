"""The payloads Slack sends to an app: slash commands (form) and block_actions (JSON in `payload=`)."""

from __future__ import annotations

import copy
import time
from typing import Any

from sim.slack.workspace import Ephemeral, Message, User


def slash_command(
    team_id: str, user: User, channel_id: str, channel_name: str, command: str, text: str, response_url: str
) -> dict[str, str]:
    return {
        "token": "sim-verification-token",
        "team_id": team_id,
        "team_domain": "sim",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": "A0DRBOT",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{int(time.time())}.{user.id}.sim",
    }


def find_button(blocks: list[dict[str, Any]] | None, action_id: str) -> tuple[str, dict[str, Any]]:
    """The (block_id, element) of the button with this action_id; ValueError lists the ones present."""
    seen: list[str] = []
    for index, block in enumerate(blocks or []):
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if not isinstance(element, dict) or element.get("type") != "button":
                continue
            seen.append(str(element.get("action_id")))
            if element.get("action_id") == action_id:
                return str(block.get("block_id") or f"sim-block-{index}"), element
    raise ValueError(
        f"no button with action_id {action_id!r} in this message; buttons present: {seen or 'none'}"
    )


def block_actions(
    team_id: str,
    user: User,
    channel_id: str,
    channel_name: str,
    target: Message | Ephemeral,
    action_id: str,
    value: str | None,
    response_url: str,
) -> dict[str, Any]:
    block_id, button = find_button(target.blocks, action_id)
    now = f"{time.time():.6f}"
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": target.ts,
        "channel_id": channel_id,
        "is_ephemeral": isinstance(target, Ephemeral),
    }
    if target.thread_ts:
        container["thread_ts"] = target.thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": team_id},
        "api_app_id": "A0DRBOT",
        "token": "sim-verification-token",
        "container": container,
        "trigger_id": f"{int(time.time())}.{user.id}.sim",
        "team": {"id": team_id, "domain": "sim"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": copy.deepcopy(button.get("text")),
                "value": value if value is not None else button.get("value"),
                "style": button.get("style"),
                "type": "button",
                "action_ts": now,
            }
        ],
    }
    if isinstance(target, Message):
        payload["message"] = target.as_api()
    return payload
