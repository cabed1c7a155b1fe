"""The Slack simulator, driven by the real slack_sdk and slack_bolt clients over loopback."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from sim.slack.driver import SlackSim

BUTTONS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Restore prod-east?*"}},
    {
        "type": "actions",
        "block_id": "gate",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve"},
                "action_id": "approve",
                "value": "g1",
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Reject"},
                "action_id": "reject",
                "value": "g1",
            },
        ],
    },
]


class Recorder:
    """A loopback HTTP endpoint standing in for the bot: records each request, answers with a callback."""

    def __init__(self, answer: Any = None) -> None:
        self.requests: list[tuple[dict[str, str], str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.requests.append((headers, body))
                status, text = answer(headers, body) if answer else (200, "")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def bolt_app(sim: SlackSim) -> App:
    app = App(client=WebClient(token=sim.bot_token, base_url=sim.url), signing_secret=sim.signing_secret)

    @app.command("/dr")
    def dr(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        ack()
        respond(f"you asked: {command['text']}")

    @app.action("approve")
    def approve(ack: Any, respond: Any, body: dict[str, Any]) -> None:
        ack()
        respond(replace_original=True, text=f"approved by {body['user']['username']}")

    return app


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim() as slack:
        yield slack


@pytest.fixture
def client(sim: SlackSim) -> WebClient:
    return WebClient(token=sim.bot_token, base_url=sim.url, retry_handlers=[])


def test_slash_command_is_signed_like_slack(sim: SlackSim) -> None:
    verifier = SignatureVerifier(sim.signing_secret)
    with Recorder() as bot:
        sim.request_url = bot.url
        for signing in ("valid", "bad", "stale", "unsigned"):
            assert sim.slash("alice", "incident", "restore prod-east", signing=signing)[0] == 200
    results = [
        verifier.is_valid(body, headers["x-slack-request-timestamp"], headers["x-slack-signature"])
        for headers, body in bot.requests[:3]
    ]
    assert results == [True, False, False]
    assert "x-slack-signature" not in bot.requests[3][0]
    form = {k: v[0] for k, v in parse_qs(bot.requests[0][1]).items()}
    assert form["command"] == "/dr" and form["text"] == "restore prod-east"
    assert form["user_id"] == "U0ALICE" and form["channel_id"] == "C0INCIDENT"
    assert form["response_url"].startswith(sim.server.root + "response/")


def test_bolt_over_http_accepts_signed_requests_and_refuses_others(sim: SlackSim) -> None:
    app = bolt_app(sim)

    def dispatch(headers: dict[str, str], body: str) -> tuple[int, str]:
        response = app.dispatch(BoltRequest(body=body, headers={k: [v] for k, v in headers.items()}))
        return response.status, response.body

    with Recorder(dispatch) as bot:
        sim.request_url = bot.url
        assert sim.slash("alice", "incident", "status")[0] == 200
        assert [sim.slash("alice", "incident", "x", signing=s)[0] for s in ("bad", "stale", "unsigned")] == [
            401
        ] * 3
        reply = sim.wait_for(lambda: sim.ephemerals("incident", "alice"))
        assert reply[0].text == "you asked: status" and reply[0].source == "response_url"

        posted = WebClient(token=sim.bot_token, base_url=sim.url).chat_postMessage(
            channel="C0INCIDENT", text="gate", blocks=BUTTONS
        )
        assert sim.click("bob", posted["ts"], "approve")[0] == 200
        sim.wait_for(lambda: sim.messages("incident")[0].text == "approved by bob")
    (gate,) = sim.messages("incident")
    assert gate.blocks is None and gate.edits[0].blocks == BUTTONS


def test_click_payload_carries_the_stored_message(sim: SlackSim, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0INCIDENT", text="gate", blocks=BUTTONS)
    with Recorder() as bot:
        sim.request_url = bot.url
        sim.click("bob", sim.messages("incident")[0], "reject")
    headers, body = bot.requests[0]
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    payload = json.loads(parse_qs(body)["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0SIM"}
    assert payload["container"]["message_ts"] == posted["ts"] and payload["channel"]["id"] == "C0INCIDENT"
    assert payload["message"]["blocks"] == BUTTONS
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "reject",
        "gate",
        "g1",
        "button",
    )
    assert payload["response_url"].startswith(sim.server.root) and payload["trigger_id"]
    with pytest.raises(ValueError, match="buttons present: \\['approve', 'reject'\\]"):
        sim.click("bob", posted["ts"], "abort")


def test_injected_429_has_slacks_shape_then_calls_succeed(sim: SlackSim, client: WebClient) -> None:
    sim.inject(429, count=2, method="chat.postMessage", retry_after=7)
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel="C0INCIDENT", text="hi")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] == "7"
        assert caught.value.response["error"] == "ratelimited"
    client.auth_test()
    assert client.chat_postMessage(channel="C0INCIDENT", text="hi")["ok"]
    assert [c.status for c in sim.calls("chat.postMessage")] == [429, 429, 200]
    assert [m.text for m in sim.messages("incident")] == ["hi"]


def test_5xx_and_ok_false_faults_through_the_http_control_endpoint(sim: SlackSim, client: WebClient) -> None:
    for spec in (
        {"count": 1, "status": 500},
        {"count": 1, "status": 503, "method": "chat.update"},
        {"count": 1, "status": 200, "error": "channel_not_found"},
    ):
        request = urllib.request.Request(
            sim.control_url + "faults", json.dumps(spec).encode(), {"Content-Type": "application/json"}
        )
        assert json.load(urllib.request.urlopen(request))["ok"]
    with pytest.raises(SlackApiError) as first:
        client.chat_postMessage(channel="C0INCIDENT", text="a")
    assert first.value.response.status_code == 500
    with pytest.raises(SlackApiError) as second:
        client.chat_postMessage(channel="C0INCIDENT", text="b")
    assert second.value.response.status_code == 200 and second.value.response["error"] == "channel_not_found"
    posted = client.chat_postMessage(channel="C0INCIDENT", text="c")
    with pytest.raises(SlackApiError) as third:
        client.chat_update(channel="C0INCIDENT", ts=posted["ts"], text="d")
    assert third.value.response.status_code == 503
    bad = urllib.request.Request(
        sim.control_url + "faults", b'{"count": 0}', {"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad)
    assert refused.value.code == 400 and "at least 1" in refused.value.read().decode()


def test_rate_limit_enforcement_answers_429_per_channel(sim: SlackSim, client: WebClient) -> None:
    sim.add_channel("C0OTHER", "other")
    sim.enforce_rate_limits(per_second=1.0, burst=2)
    statuses = []
    for _ in range(4):
        try:
            client.chat_postMessage(channel="C0INCIDENT", text="x")
            statuses.append(200)
        except SlackApiError as error:
            statuses.append(error.response.status_code)
            assert int(error.response.headers["Retry-After"]) >= 1
    assert statuses == [200, 200, 429, 429]
    assert client.chat_postMessage(channel="C0OTHER", text="y")["ok"]


def test_files_upload_v2_stores_the_file_in_the_thread(sim: SlackSim, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0INCIDENT", text="run 1")
    result = client.files_upload_v2(
        channel="C0INCIDENT",
        filename="etcd.log",
        content="snapshot saved\n",
        title="etcd",
        thread_ts=parent["ts"],
    )
    (uploaded,) = sim.files
    assert result["file"]["id"] == uploaded.id
    assert (uploaded.text, uploaded.title, uploaded.thread_ts) == ("snapshot saved\n", "etcd", parent["ts"])
    assert sim.thread("incident", parent["ts"])[0].files == [uploaded.id]
    methods = [c.method for c in sim.calls()]
    assert methods[-3:] == ["files.getUploadURLExternal", "files.upload", "files.completeUploadExternal"]


def test_response_url_replace_delete_ephemeral_in_channel_and_five_uses(
    sim: SlackSim, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel="C0INCIDENT", text="gate", blocks=BUTTONS)
    with Recorder() as bot:
        sim.request_url = bot.url
        sim.click("bob", posted["ts"], "approve")
    url = json.loads(parse_qs(bot.requests[0][1])["payload"][0])["response_url"]
    hook = WebhookClient(url)
    assert hook.send_dict({"text": "only bob sees this"}).status_code == 200
    assert hook.send_dict({"replace_original": True, "text": "approved"}).status_code == 200
    assert hook.send_dict({"response_type": "in_channel", "text": "announced"}).status_code == 200
    assert [m.text for m in sim.messages("incident")] == ["approved", "announced"]
    assert [e.text for e in sim.ephemerals("incident", "bob")] == ["only bob sees this"]
    assert hook.send_dict({"delete_original": True}).status_code == 200
    assert [m.text for m in sim.messages("incident")] == ["announced"]
    assert hook.send_dict({"text": "fifth"}).status_code == 200
    sixth = hook.send_dict({"text": "sixth"})
    assert sixth.status_code == 404 and "used_url" in sixth.body


def test_block_kit_and_text_limits(sim: SlackSim, client: WebClient) -> None:
    def error_of(**kwargs: Any) -> tuple[str, list[str]]:
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel="C0INCIDENT", **kwargs)
        return caught.value.response["error"], caught.value.response.get("errors", [])

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert error_of(text="t", blocks=[section]) == (
        "invalid_blocks",
        ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"],
    )
    divider = {"type": "divider"}
    assert error_of(text="t", blocks=[divider] * 51)[1] == [
        "no more than 50 items allowed [json-pointer:/blocks]"
    ]
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Go"},
        "action_id": "a" * 256,
        "value": "v" * 2001,
    }
    assert error_of(text="t", blocks=[{"type": "actions", "elements": [button]}])[1] == [
        "must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]",
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
    ]
    with pytest.warns(UserWarning, match="text"):
        assert error_of(text="")[0] == "no_text"
    long = client.chat_postMessage(channel="C0INCIDENT", text="y" * 40_001)
    assert long["response_metadata"]["warnings"] == ["message_truncated"]
    assert len(sim.messages("incident")[0].text) == 40_000
    with pytest.raises(SlackApiError, match="msg_too_long"):
        client.chat_update(channel="C0INCIDENT", ts=long["ts"], text="z" * 4001)


def test_auth_and_membership_errors(sim: SlackSim) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=sim.url, retry_handlers=[])
    with pytest.raises(SlackApiError, match="invalid_auth"):
        wrong.auth_test()
    sim.add_channel("C0PRIVATE", "private", bot_member=False)
    client = WebClient(token=sim.bot_token, base_url=sim.url, retry_handlers=[])
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client.chat_postMessage(channel="C0PRIVATE", text="x")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.chat_postMessage(channel="C0NOPE", text="x")


def test_read_methods(sim: SlackSim, client: WebClient) -> None:
    sim.add_usergroup("S0SRE", ["alice", "bob"])
    assert client.auth_test()["user_id"] == "U0DRBOT"
    assert client.users_info(user="U0ALICE")["user"]["name"] == "alice"
    assert client.usergroups_users_list(usergroup="S0SRE")["users"] == ["U0ALICE", "U0BOB"]
    with pytest.raises(SlackApiError, match="no_such_subteam"):
        client.usergroups_users_list(usergroup="S0NONE")
    assert client.conversations_info(channel="C0INCIDENT")["channel"]["name"] == "incident"
    assert "U0CAROL" in client.conversations_members(channel="C0INCIDENT")["members"]
    parent = client.chat_postMessage(channel="C0INCIDENT", text="parent")
    client.chat_postMessage(channel="C0INCIDENT", text="reply", thread_ts=parent["ts"])
    client.chat_postMessage(channel="C0INCIDENT", text="later")
    history = client.conversations_history(channel="C0INCIDENT")["messages"]
    assert [m["text"] for m in history] == ["later", "parent"] and history[1]["reply_count"] == 1
    replies = client.conversations_replies(channel="C0INCIDENT", ts=parent["ts"])["messages"]
    assert [m["text"] for m in replies] == ["parent", "reply"]


def test_transcript_shows_threads_edits_buttons_ephemerals_and_files(
    sim: SlackSim, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="C0INCIDENT", text="gate pending")
    client.chat_postMessage(channel="C0INCIDENT", text="step 1 ok", thread_ts=parent["ts"])
    client.files_upload_v2(
        channel="C0INCIDENT", filename="a.log", content="abc", title="A", thread_ts=parent["ts"]
    )
    client.chat_update(channel="C0INCIDENT", ts=parent["ts"], text="gate", blocks=BUTTONS)
    client.chat_postEphemeral(channel="C0INCIDENT", user="U0ALICE", text="psst")
    text = sim.transcript("incident", show_edits=True)
    lines = text.splitlines()
    assert lines[0] == "#incident (C0INCIDENT)"
    assert "drbot: *Restore prod-east?*  (edited 1x)" in lines[1]
    assert lines[2].strip() == "[Approve] [Reject]" and lines[3].strip() == "~ version 1: gate pending"
    assert any("└" in line and "step 1 ok" in line for line in lines)
    assert any('[file a.log "A" 3 bytes]' in line for line in lines)
    assert "(only visible to alice) drbot: psst" in lines[-1]


def test_socket_mode_delivers_slash_commands_and_clicks_to_bolt() -> None:
    with SlackSim(mode="socket") as sim:
        app = bolt_app(sim)
        handler = SocketModeHandler(app, sim.app_token)
        handler.connect()
        try:
            status, _ = sim.slash("alice", "incident", "plan prod-east")
            assert status == 200
            reply = sim.wait_for(lambda: sim.ephemerals("incident", "alice"))
            assert reply[0].text == "you asked: plan prod-east"
            posted = app.client.chat_postMessage(channel="C0INCIDENT", text="gate", blocks=BUTTONS)
            assert sim.click("carol", posted["ts"], "approve")[0] == 200
            sim.wait_for(lambda: sim.messages("incident")[0].text == "approved by carol")
        finally:
            handler.close()
        assert [c.method for c in sim.calls("apps.connections.open")] == ["apps.connections.open"]
