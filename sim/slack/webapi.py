"""The Web API methods drbot calls, answered from and applied to the simulated workspace."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sim.slack.limits import MAX_UPDATE_TEXT_BYTES, block_errors, truncate_text
from sim.slack.workspace import Edit, Ephemeral, Message, UploadedFile, Workspace

Body = dict[str, Any]


class ApiError(Exception):
    """An `ok:false` answer (HTTP 200) with Slack's error code."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _json_arg(args: dict[str, Any], name: str) -> Any:
    """Blocks and file lists arrive as JSON strings in form bodies and as objects in JSON bodies."""
    value = args.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ApiError("invalid_arguments", detail=f"{name} is not valid JSON") from exc
    return value


class WebApi:
    """Dispatches `method` + arguments to the handler; upload URLs point under `base_url`."""

    def __init__(self, workspace: Workspace, base_url: Callable[[], str]) -> None:
        self.ws = workspace
        self._base_url = base_url
        self.handlers: dict[str, Callable[[dict[str, Any]], Body]] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.post_message,
            "chat.update": self.update,
            "chat.postEphemeral": self.post_ephemeral,
            "files.getUploadURLExternal": self.get_upload_url,
            "files.completeUploadExternal": self.complete_upload,
            "users.info": self.users_info,
            "usergroups.users.list": self.usergroup_users,
            "conversations.info": self.conversations_info,
            "conversations.members": self.conversations_members,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
        }

    def call(self, method: str, args: dict[str, Any]) -> Body:
        handler = self.handlers.get(method)
        if handler is None:
            raise ApiError("unknown_method")
        with self.ws.lock:
            return handler(args)

    def _channel(self, args: dict[str, Any], key: str = "channel", need_member: bool = True) -> str:
        channel = args.get(key)
        if not channel:
            raise ApiError("channel_not_found")
        chan = self.ws.channels.get(str(channel))
        if chan is None:
            raise ApiError("channel_not_found")
        if need_member and self.ws.bot_user.id not in chan.members:
            raise ApiError("not_in_channel")
        return chan.id

    def _content(self, args: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None, list[str]]:
        blocks = _json_arg(args, "blocks")
        text = args.get("text") or ""
        if blocks is not None:
            errors = block_errors(blocks)
            if errors:
                raise ApiError("invalid_blocks", errors=errors)
        elif not text:
            raise ApiError("no_text")
        text, warnings = truncate_text(str(text))
        return text, blocks, warnings

    def auth_test(self, args: dict[str, Any]) -> Body:
        return {
            "url": "https://sim.slack.com/",
            "team": "Simulated Workspace",
            "user": self.ws.bot_user.name,
            "team_id": self.ws.team_id,
            "user_id": self.ws.bot_user.id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    def post_message(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args)
        text, blocks, warnings = self._content(args)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self.ws.find_message(channel, str(thread_ts))
            if parent is None:
                raise ApiError("thread_not_found")
            thread_ts = parent.thread_ts or parent.ts
        message = Message(
            ts=self.ws.next_ts(),
            channel=channel,
            text=text,
            blocks=blocks,
            user=self.ws.bot_user.id,
            bot_id=self.ws.bot_id,
            thread_ts=thread_ts,
        )
        self.ws.channels[channel].messages.append(message)
        body: Body = {"channel": channel, "ts": message.ts, "message": message.as_api()}
        if warnings:
            body["warning"] = ",".join(warnings)
            body["response_metadata"] = {"warnings": warnings}
        return body

    def update(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args)
        ts = str(args.get("ts") or "")
        message = self.ws.find_message(channel, ts)
        if message is None:
            if self.ws.find_ephemeral(ts) is not None:
                raise ApiError("cant_update_message")
            raise ApiError("message_not_found")
        if message.user != self.ws.bot_user.id:
            raise ApiError("cant_update_message")
        text, blocks, _ = self._content(args)
        if len(text.encode("utf-8")) > MAX_UPDATE_TEXT_BYTES:
            raise ApiError("msg_too_long")
        message.edits.append(
            Edit(ts=message.edited_ts or message.ts, text=message.text, blocks=message.blocks)
        )
        message.text, message.blocks = text, blocks
        message.edited_ts = self.ws.next_ts()
        return {"channel": channel, "ts": ts, "text": text, "message": message.as_api()}

    def post_ephemeral(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args)
        user = str(args.get("user") or "")
        if user not in self.ws.users:
            raise ApiError("user_not_found")
        if user not in self.ws.channels[channel].members:
            raise ApiError("user_not_in_channel")
        text, blocks, _ = self._content(args)
        eph = Ephemeral(
            id=self.ws.next_id("E"),
            ts=self.ws.next_ts(),
            channel=channel,
            user=user,
            text=text,
            blocks=blocks,
            thread_ts=args.get("thread_ts") or None,
        )
        self.ws.ephemerals.append(eph)
        return {"message_ts": eph.ts}

    def get_upload_url(self, args: dict[str, Any]) -> Body:
        filename = args.get("filename")
        if not filename:
            raise ApiError("invalid_arguments", detail="filename is required")
        try:
            length = int(args.get("length", ""))
        except ValueError as exc:
            raise ApiError("invalid_arguments", detail="length must be an integer") from exc
        file_id = self.ws.next_id("F")
        self.ws.files[file_id] = UploadedFile(id=file_id, filename=str(filename), length=length)
        return {"upload_url": f"{self._base_url()}upload/{file_id}", "file_id": file_id}

    def complete_upload(self, args: dict[str, Any]) -> Body:
        items = _json_arg(args, "files")
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_arguments", detail="files must be a non-empty list")
        channel = self._channel(args, "channel_id") if args.get("channel_id") else None
        thread_ts = args.get("thread_ts") or None
        if channel and thread_ts and self.ws.find_message(channel, str(thread_ts)) is None:
            raise ApiError("thread_not_found")
        shared: list[UploadedFile] = []
        for item in items:
            uploaded = self.ws.files.get(str(item.get("id")))
            if uploaded is None or uploaded.content is None:
                raise ApiError("file_not_found")
            shared.append(uploaded)
        comment = args.get("initial_comment") or ""
        for item, uploaded in zip(items, shared, strict=True):
            uploaded.title = str(item.get("title") or uploaded.filename)
            uploaded.channel, uploaded.thread_ts, uploaded.initial_comment = channel, thread_ts, comment
        if channel:
            self.ws.channels[channel].messages.append(
                Message(
                    ts=self.ws.next_ts(),
                    channel=channel,
                    text=str(comment),
                    user=self.ws.bot_user.id,
                    bot_id=self.ws.bot_id,
                    thread_ts=thread_ts,
                    files=[f.id for f in shared],
                )
            )
        return {"files": [f.as_api() for f in shared]}

    def users_info(self, args: dict[str, Any]) -> Body:
        user = self.ws.users.get(str(args.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.as_api(self.ws.team_id)}

    def usergroup_users(self, args: dict[str, Any]) -> Body:
        group = str(args.get("usergroup") or "")
        if group not in self.ws.usergroups:
            raise ApiError("no_such_subteam")
        return {"users": list(self.ws.usergroups[group])}

    def conversations_info(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args, need_member=False)
        chan = self.ws.channels[channel]
        return {
            "channel": {
                "id": chan.id,
                "name": chan.name,
                "is_channel": not chan.is_private,
                "is_private": chan.is_private,
                "is_member": self.ws.bot_user.id in chan.members,
                "num_members": len(chan.members),
            }
        }

    def conversations_members(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args, need_member=False)
        return {
            "members": sorted(self.ws.channels[channel].members),
            "response_metadata": {"next_cursor": ""},
        }

    def conversations_history(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args)
        limit = int(args.get("limit") or 100)
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 1e12)
        top = [m for m in self.ws.top_level(channel) if oldest <= float(m.ts) <= latest]
        newest_first = sorted(top, key=lambda m: float(m.ts), reverse=True)[:limit]
        messages = [m.as_api(self.ws.replies(channel, m.ts)) for m in newest_first]
        return {"messages": messages, "has_more": len(top) > limit, "response_metadata": {"next_cursor": ""}}

    def conversations_replies(self, args: dict[str, Any]) -> Body:
        channel = self._channel(args)
        parent = self.ws.find_message(channel, str(args.get("ts") or ""))
        if parent is None:
            raise ApiError("thread_not_found")
        replies = self.ws.replies(channel, parent.ts)
        messages = [parent.as_api(replies)] + [r.as_api() for r in replies]
        return {"messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}
