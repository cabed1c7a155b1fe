"""The simulated workspace's state: users, channels, messages, ephemeral messages, files and calls.

Everything here is plain data guarded by one lock; the HTTP server and the test driver both read and
write it from different threads.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class User:
    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False

    def as_api(self, team_id: str) -> dict[str, Any]:
        real = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": real,
            "is_bot": self.is_bot,
            "deleted": False,
            "profile": {"real_name": real, "display_name": self.name},
        }


@dataclass
class Edit:
    """One earlier version of a message, kept so transcripts and tests can see what changed."""

    ts: str
    text: str
    blocks: list[dict[str, Any]] | None


@dataclass
class Message:
    ts: str
    channel: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    user: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    files: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    edited_ts: str | None = None
    deleted: bool = False

    def as_api(self, replies: list[Message] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.user:
            data["user"] = self.user
        if self.bot_id:
            data["bot_id"] = self.bot_id
        if self.blocks is not None:
            data["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.files:
            data["files"] = [{"id": f} for f in self.files]
        if self.edited_ts:
            data["edited"] = {"user": self.user, "ts": self.edited_ts}
        if replies:
            data["thread_ts"] = self.ts
            data["reply_count"] = len(replies)
            data["latest_reply"] = replies[-1].ts
        return data


@dataclass
class Ephemeral:
    """A message only one user sees; it lives outside the channel history, as in Slack."""

    id: str
    ts: str
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    source: str = "chat.postEphemeral"
    edits: list[Edit] = field(default_factory=list)
    deleted: bool = False


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8", errors="replace")

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.filename,
            "title": self.title or self.filename,
            "size": self.length,
            "channels": [self.channel] if self.channel else [],
        }


@dataclass
class Channel:
    id: str
    name: str
    members: set[str]
    is_private: bool = False
    messages: list[Message] = field(default_factory=list)


@dataclass
class ResponseUrl:
    """A response_url handed out with a slash command or a click: 5 uses within 30 minutes."""

    token: str
    channel: str
    user: str
    created: float
    original_ts: str | None = None
    original_ephemeral: str | None = None
    uses: int = 0


@dataclass
class Call:
    """One request the simulator received, as recorded for tests and transcripts."""

    method: str
    args: dict[str, Any]
    time: float
    status: int
    error: str | None = None


class Workspace:
    """All state of the simulated Slack workspace. Use `lock` around reads that need a consistent view."""

    def __init__(self, team_id: str = "T0SIM", bot_user: User | None = None, bot_id: str = "B0DRBOT") -> None:
        self.lock = threading.RLock()
        self.team_id = team_id
        self.bot_user = bot_user or User("U0DRBOT", "drbot", "drbot", is_bot=True)
        self.bot_id = bot_id
        self.users: dict[str, User] = {self.bot_user.id: self.bot_user}
        self.usergroups: dict[str, list[str]] = {}
        self.channels: dict[str, Channel] = {}
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, UploadedFile] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.calls: list[Call] = []
        self._last_ts = 0.0
        self._counter = 0

    def next_ts(self) -> str:
        """A message ts in Slack's "seconds.micros" form, strictly increasing."""
        with self.lock:
            now = max(time.time(), self._last_ts + 0.000001)
            self._last_ts = now
            return f"{now:.6f}"

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self._counter += 1
            return f"{prefix}{self._counter:08d}"

    def add_user(self, user_id: str, name: str, real_name: str = "") -> User:
        with self.lock:
            user = User(user_id, name, real_name)
            self.users[user_id] = user
            return user

    def add_channel(
        self, channel_id: str, name: str, members: list[str] | None = None, bot_member: bool = True
    ) -> Channel:
        with self.lock:
            people = set(members if members is not None else [u for u in self.users if u != self.bot_user.id])
            if bot_member:
                people.add(self.bot_user.id)
            channel = Channel(channel_id, name, people)
            self.channels[channel_id] = channel
            return channel

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def find_message(self, channel: str, ts: str) -> Message | None:
        with self.lock:
            chan = self.channels.get(channel)
            if chan is None:
                return None
            for message in chan.messages:
                if message.ts == ts and not message.deleted:
                    return message
            return None

    def find_ephemeral(self, ephemeral_id_or_ts: str) -> Ephemeral | None:
        with self.lock:
            for eph in self.ephemerals:
                if ephemeral_id_or_ts in (eph.id, eph.ts) and not eph.deleted:
                    return eph
            return None

    def top_level(self, channel: str) -> list[Message]:
        with self.lock:
            chan = self.channels[channel]
            return [m for m in chan.messages if not m.deleted and (m.thread_ts in (None, m.ts))]

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        with self.lock:
            chan = self.channels[channel]
            return [
                m for m in chan.messages if not m.deleted and m.thread_ts == thread_ts and m.ts != thread_ts
            ]
