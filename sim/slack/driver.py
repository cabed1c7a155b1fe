"""SlackSim: the Slack simulator as tests and drills use it.

    with SlackSim(request_url="http://127.0.0.1:3000/slack/events") as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.url)
        status, body = slack.slash("alice", "incident", "restore prod-east")
        status_msg = slack.wait_for(lambda: slack.messages("incident"))[0]
        slack.click("bob", status_msg, "approve")
        print(slack.transcript("incident"))

In `mode="socket"` slash() and click() go through the Socket Mode WebSocket instead of signed HTTP.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from sim.slack import payloads
from sim.slack.faults import Fault, PostingLimit
from sim.slack.server import SlackServer
from sim.slack.signing import signed_headers
from sim.slack.transcript import render_channel
from sim.slack.workspace import Call, Ephemeral, Message, UploadedFile, User, Workspace

T = TypeVar("T")

DEFAULT_USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol"}
DEFAULT_CHANNELS = {"C0INCIDENT": "incident"}


class SlackSim:
    def __init__(
        self,
        request_url: str | None = None,
        *,
        mode: str = "http",
        signing_secret: str = "sim-signing-secret",
        bot_token: str = "xoxb-sim-bot-token",
        app_token: str = "xapp-sim-app-token",
        users: Mapping[str, str] | None = None,
        channels: Mapping[str, str] | None = None,
        usergroups: Mapping[str, list[str]] | None = None,
        port: int = 0,
    ) -> None:
        if mode not in ("http", "socket"):
            raise ValueError(f"mode must be 'http' or 'socket', got {mode!r}")
        if mode == "http" and request_url is not None and not request_url.startswith("http://127."):
            raise ValueError(
                f"request_url must be a loopback http URL (http://127.x.x.x:PORT/...), got {request_url}"
            )
        if not bot_token.startswith("xoxb-") or not app_token.startswith("xapp-"):
            raise ValueError("bot_token must start with xoxb- and app_token with xapp-")
        self.request_url = request_url
        self.mode = mode
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.app_token = app_token
        self.workspace = Workspace()
        for user_id, name in (users if users is not None else DEFAULT_USERS).items():
            self.workspace.add_user(user_id, name)
        for channel_id, name in (channels if channels is not None else DEFAULT_CHANNELS).items():
            self.workspace.add_channel(channel_id, name)
        self.workspace.usergroups.update({k: list(v) for k, v in (usergroups or {}).items()})
        self.server = SlackServer(self.workspace, bot_token, app_token, port=port)

    def start(self) -> SlackSim:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> SlackSim:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Web API base URL for WebClient(base_url=...) and SLACK_API_URL."""
        return self.server.base_url

    @property
    def control_url(self) -> str:
        """Base of the HTTP control endpoints (/_sim/faults, /_sim/ratelimit, /_sim/calls)."""
        return f"{self.server.root}_sim/"

    def add_user(self, user_id: str, name: str, channels: list[str] | None = None) -> User:
        user = self.workspace.add_user(user_id, name)
        with self.workspace.lock:
            for chan in channels if channels is not None else list(self.workspace.channels):
                self.workspace.channels[self.channel_id(chan)].members.add(user_id)
        return user

    def add_channel(
        self, channel_id: str, name: str, members: list[str] | None = None, bot_member: bool = True
    ) -> None:
        self.workspace.add_channel(channel_id, name, members, bot_member)

    def add_usergroup(self, group_id: str, members: list[str]) -> None:
        with self.workspace.lock:
            self.workspace.usergroups[group_id] = [self.user(m).id for m in members]

    def user(self, who: str) -> User:
        """A user by id or name."""
        with self.workspace.lock:
            for user in self.workspace.users.values():
                if who in (user.id, user.name):
                    return user
            known = ", ".join(f"{u.name} ({u.id})" for u in self.workspace.users.values())
        raise KeyError(f"no simulated user {who!r}; known users: {known}")

    def channel_id(self, channel: str) -> str:
        """A channel id from an id, a name or a #name."""
        name = channel.removeprefix("#")
        with self.workspace.lock:
            for chan in self.workspace.channels.values():
                if name in (chan.id, chan.name):
                    return chan.id
            known = ", ".join(f"#{c.name} ({c.id})" for c in self.workspace.channels.values())
        raise KeyError(f"no simulated channel {channel!r}; known channels: {known}")

    def inject(
        self,
        status: int = 429,
        count: int = 1,
        method: str | None = None,
        retry_after: int = 1,
        error: str | None = None,
        channel: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `count` calls (to `method` and/or `channel`, or any) with this fault.

        status 429 sends Retry-After: retry_after and {"ok":false,"error":"ratelimited"}; 500/503 send an
        HTTP error; status 200 with error="..." sends an ok:false answer; `delay` holds each call that
        many seconds first. Methods include the Web API names plus "response_url" and "files.upload"
        (the raw upload step).
        """
        channel_id = self.channel_id(channel) if channel is not None else None
        self.server.faults.add(Fault(count, status, method, retry_after, error, channel_id, delay))

    def delay(
        self, seconds: float, count: int = 1, method: str | None = None, channel: str | None = None
    ) -> None:
        """Answer the next `count` calls (to `method` and/or `channel`, or any) normally, but only after
        `seconds`: the call takes effect late, as on a slow Slack, even if the caller gave up meanwhile."""
        self.inject(200, count, method, channel=channel, delay=seconds)

    def clear_faults(self) -> None:
        self.server.faults.clear()

    def enforce_rate_limits(self, enabled: bool = True, per_second: float = 1.0, burst: int = 4) -> None:
        """Answer chat.postMessage with 429 past about per_second messages a second per channel."""
        self.server.posting_limit = PostingLimit(per_second, burst) if enabled else None

    def _post_to_bot(self, body: str, content_type: str, signing: str, timeout: float) -> tuple[int, str]:
        if self.request_url is None:
            raise RuntimeError(
                "SlackSim needs request_url (the bot's /slack/events URL) to send HTTP requests"
            )
        headers = signed_headers(self.signing_secret, body, content_type, signing)
        request = urllib.request.Request(self.request_url, data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def _deliver(self, kind: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        status, ack = self.server.run_coroutine(self.server.link.deliver(kind, payload, timeout), timeout)
        return status, ack if isinstance(ack, str) else json.dumps(ack)

    def slash(
        self,
        user: str,
        channel: str,
        text: str,
        command: str = "/dr",
        signing: str = "valid",
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """Send a slash command as `user` in `channel`; returns the bot's (HTTP status, body) or, in Socket
        Mode, (200, ack payload as JSON) once the envelope is acked. signing: valid, unsigned, bad, stale."""
        who = self.user(user)
        channel_id = self.channel_id(channel)
        token = self.server.response_urls.issue(channel_id, who.id)
        form = payloads.slash_command(
            self.workspace.team_id,
            who,
            channel_id,
            self.workspace.channels[channel_id].name,
            command,
            text,
            self.server.response_url(token),
        )
        self.workspace.record(Call("slash_command", dict(form), time.time(), 0))
        if self.mode == "socket":
            return self._deliver("slash_commands", form, timeout)
        return self._post_to_bot(urlencode(form), "application/x-www-form-urlencoded", signing, timeout)

    def response_url(self, channel: str, user: str) -> str:
        """A fresh response_url for `user` in `channel`, as a slash command would carry."""
        token = self.server.response_urls.issue(self.channel_id(channel), self.user(user).id)
        return self.server.response_url(token)

    def _target(self, message: Message | Ephemeral | str) -> Message | Ephemeral:
        if isinstance(message, Message | Ephemeral):
            return message
        with self.workspace.lock:
            for chan in self.workspace.channels.values():
                found = self.workspace.find_message(chan.id, message)
                if found is not None:
                    return found
            eph = self.workspace.find_ephemeral(message)
        if eph is None:
            raise KeyError(f"no message or ephemeral message with ts/id {message!r} in the simulator")
        return eph

    def click(
        self,
        user: str,
        message: Message | Ephemeral | str,
        action_id: str,
        value: str | None = None,
        signing: str = "valid",
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """Click the button `action_id` on a stored message (object or ts) as `user`.

        The payload carries the message as stored now (with its blocks) and a fresh response_url."""
        who = self.user(user)
        with self.workspace.lock:
            target = self._target(message)
            current = (
                self.workspace.find_message(target.channel, target.ts)
                if isinstance(target, Message)
                else self.workspace.find_ephemeral(target.id)
            )
            if current is None:
                raise KeyError(f"message {target.ts} in {target.channel} was deleted; it cannot be clicked")
            token = self.server.response_urls.issue(
                current.channel,
                who.id,
                original_ts=current.ts if isinstance(current, Message) else None,
                original_ephemeral=current.id if isinstance(current, Ephemeral) else None,
            )
            payload = payloads.block_actions(
                self.workspace.team_id,
                who,
                current.channel,
                self.workspace.channels[current.channel].name,
                current,
                action_id,
                value,
                self.server.response_url(token),
            )
        self.workspace.record(Call("block_actions", {"action_id": action_id, "user": who.id}, time.time(), 0))
        if self.mode == "socket":
            return self._deliver("interactive", payload, timeout)
        body = f"payload={quote(json.dumps(payload))}"
        return self._post_to_bot(body, "application/x-www-form-urlencoded", signing, timeout)

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        return self.workspace.top_level(self.channel_id(channel))

    def thread(self, channel: str, ts: str) -> list[Message]:
        """Replies in the thread under `ts`, oldest first (the parent is not included)."""
        return self.workspace.replies(self.channel_id(channel), ts)

    def all_messages(self, channel: str) -> list[Message]:
        """Every live message of a channel, threads included, in the order they were posted."""
        with self.workspace.lock:
            return [m for m in self.workspace.channels[self.channel_id(channel)].messages if not m.deleted]

    def ephemerals(self, channel: str, user: str | None = None) -> list[Ephemeral]:
        channel_id = self.channel_id(channel)
        user_id = self.user(user).id if user is not None else None
        with self.workspace.lock:
            return [
                e
                for e in self.workspace.ephemerals
                if e.channel == channel_id and not e.deleted and user_id in (None, e.user)
            ]

    @property
    def files(self) -> list[UploadedFile]:
        with self.workspace.lock:
            return [f for f in self.workspace.files.values() if f.content is not None]

    def calls(self, method: str | None = None) -> list[Call]:
        with self.workspace.lock:
            return [c for c in self.workspace.calls if method in (None, c.method)]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
        """Poll until predicate() is truthy and return its value; TimeoutError says what was awaited."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"condition {getattr(predicate, '__name__', predicate)} not met in {timeout} s"
                )
            time.sleep(interval)

    def transcript(self, channel: str, show_edits: bool = False) -> str:
        return render_channel(self.workspace, self.channel_id(channel), show_edits)
