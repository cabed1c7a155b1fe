"""The outbox against real Redis (db 2) and the Slack simulator through the real slack_sdk WebClient."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from bot.outbox import Outbox
from bot.outbox_sender import OutboxSender, make_web_client
from bot.pacing import DEFAULT_RATES, MethodRates, Pacer, Rate
from sim.slack.driver import SlackSim
from workers import keys

REDIS_URL = "redis://127.0.0.1:6379/2"
CHANNELS = {"C0A": "alpha", "C0B": "bravo"}
FAST = {**DEFAULT_RATES, "chat.postMessage": MethodRates(per_channel=Rate(20.0, 5))}
"""Quick pacing so tests take seconds; the real rates are covered by test_pacing_stays_under_slack_limit."""


@pytest.fixture
def redis() -> Iterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def slack() -> Iterator[SlackSim]:
    with SlackSim(channels=CHANNELS) as sim:
        yield sim


def sender_for(redis: Redis, slack: SlackSim, rates: dict[str, MethodRates] | None = None) -> OutboxSender:
    return OutboxSender(
        redis,
        make_web_client(slack.bot_token, slack.url),
        pacer=Pacer(FAST if rates is None else rates),
        backoff_base=0.1,
        backoff_cap=0.5,
        lock_ttl=5.0,
    )


def texts(slack: SlackSim, channel: str) -> list[str]:
    return [m.text for m in slack.all_messages(channel)]


def dead_letters(redis: Redis) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(keys.outbox_dead_letters(), 0, -1)]


def test_burst_of_429s_and_5xx_delivers_every_message_in_order(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    for i in range(30):
        outbox.post("C0A", f"A-{i:02d}")
    for i in range(10):
        outbox.post("C0B", f"B-{i:02d}")
    slack.inject(429, count=1, method="chat.postMessage", retry_after=1, channel="C0A")
    slack.inject(500, count=2, method="chat.postMessage", channel="C0A")
    slack.inject(429, count=1, method="chat.postMessage", retry_after=1, channel="C0A")
    slack.inject(503, count=2, method="chat.postMessage", channel="C0B")
    slack.inject(429, count=1, method="chat.postMessage", retry_after=1)

    sender = sender_for(redis, slack)
    assert sender.drain(timeout=30)

    assert texts(slack, "C0A") == [f"A-{i:02d}" for i in range(30)]
    assert texts(slack, "C0B") == [f"B-{i:02d}" for i in range(10)]
    first_a = slack.all_messages("C0A")[0]
    assert all(float(m.ts) < float(first_a.ts) for m in slack.all_messages("C0B")), "B waited for A's 429"
    refused = [c for c in slack.calls("chat.postMessage") if c.status != 200]
    assert sorted(c.status for c in refused) == [429, 429, 429, 500, 500, 503, 503]
    assert sender.stats["sent"] == 40 and sender.stats["ratelimited"] == 3 and sender.stats["retried"] == 4
    assert dead_letters(redis) == []
    assert redis.smembers(keys.outbox_channels()) == set()


def test_status_slot_thread_replies_and_collapsed_updates(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    outbox.post("C0A", "run abc: starting", slot="run:abc:status")
    outbox.post("C0A", "step 1 done", thread_slot="run:abc:status")
    for n in range(1, 4):
        outbox.update("C0A", "run:abc:status", f"run abc: {n}/3")
    outbox.post("C0A", "step 2 done", thread_slot="run:abc:status")
    outbox.update("C0A", "run:abc:status", "run abc: finished")

    sender = sender_for(redis, slack)
    assert sender.drain(timeout=10)

    (status,) = slack.messages("C0A")
    assert status.text == "run abc: finished"
    assert [e.text for e in status.edits] == ["run abc: starting", "run abc: 3/3"]
    assert [m.text for m in slack.thread("C0A", status.ts)] == ["step 1 done", "step 2 done"]
    assert redis.get(keys.slot("run:abc:status")).decode() == status.ts
    assert len(slack.calls("chat.update")) == 2 and sender.stats["coalesced"] == 2


def test_refused_calls_are_dead_lettered_and_the_channel_moves_on(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    outbox.post("C0A", "bad blocks", blocks=too_long)
    outbox.post("C0NOPE", "nowhere")
    outbox.update("C0A", "never-posted", "edit of nothing")
    outbox.respond(slack.server.root + "response/R-unknown", {"text": "late answer"}, "C0A")
    outbox.post("C0A", "after the bad ones")

    sender = sender_for(redis, slack)
    assert sender.drain(timeout=10)

    assert texts(slack, "C0A") == ["after the bad ones"]
    errors = {
        d["entry"]["args"].get("text", d["entry"]["args"].get("payload", {}).get("text")): d["error"]
        for d in dead_letters(redis)
    }
    assert "invalid_blocks" in errors["bad blocks"] and "3001 characters" in errors["bad blocks"]
    assert "channel_not_found" in errors["nowhere"]
    assert "never-posted" in errors["edit of nothing"]
    assert "HTTP 404" in errors["late answer"]


def test_failures_past_the_retry_budget_go_to_dead_letters(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    outbox.post("C0A", "doomed")
    outbox.post("C0A", "fine")
    slack.inject(500, count=1000, method="chat.postMessage", channel="C0A")
    sender = sender_for(redis, slack)
    sender.retry_budget = 0.5
    while sender.stats["dead"] == 0:
        sender.drain_once()
    slack.clear_faults()
    assert sender.drain(timeout=10)

    assert texts(slack, "C0A") == ["fine"]
    (dead,) = dead_letters(redis)
    assert dead["entry"]["args"]["text"] == "doomed" and "HTTP 500" in dead["error"]


def free_port_outside_ephemeral_range() -> int:
    """A port no outgoing connection will borrow meanwhile, so the simulator can bind it later."""
    for port in random.sample(range(20_000, 32_000), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


def test_connection_errors_are_retried_until_slack_answers(redis: Redis) -> None:
    port = free_port_outside_ephemeral_range()
    outbox = Outbox(redis)
    outbox.post("C0A", "sent once Slack is back")
    offline = SlackSim(channels=CHANNELS, port=port)
    sender = sender_for(redis, offline)
    for _ in range(3):
        sender.drain_once()
        time.sleep(0.15)
    assert sender.stats["retried"] >= 2 and outbox.pending("C0A") == 1
    with offline:
        assert sender.drain(timeout=10)
        assert texts(offline, "C0A") == ["sent once Slack is back"]
    assert dead_letters(redis) == []


def test_pacing_stays_under_slack_posting_limit(redis: Redis, slack: SlackSim) -> None:
    slack.enforce_rate_limits(per_second=1.0, burst=4)
    outbox = Outbox(redis)
    for i in range(6):
        outbox.post("C0A", f"paced {i}")
    sender = sender_for(redis, slack, rates=DEFAULT_RATES)
    assert sender.drain(timeout=20)
    assert texts(slack, "C0A") == [f"paced {i}" for i in range(6)]
    assert [c.status for c in slack.calls("chat.postMessage")] == [200] * 6


def test_upload_ephemeral_respond_and_long_text(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    outbox.post("C0A", "run xyz", slot="run:xyz:status")
    outbox.upload("C0A", "etcd.log", "line\n" * 2000, "etcd log", thread_slot="run:xyz:status")
    outbox.upload("C0A", "raw.bin", b"\x00\x01\x02", "raw bytes")
    outbox.ephemeral("C0A", "U0ALICE", "only for alice")
    outbox.respond(slack.response_url("C0A", "bob"), {"text": "for bob", "response_type": "ephemeral"}, "C0A")
    outbox.post("C0B", "\n".join(f"row {i:04d} " + "y" * 60 for i in range(120)))
    outbox.post("C0B", "z" * 50_000)

    sender = sender_for(redis, slack)
    assert sender.drain(timeout=15)

    status = slack.messages("C0A")[0]
    (reply,) = slack.thread("C0A", status.ts)
    by_name = {f.filename: f for f in slack.files}
    assert reply.files == [by_name["etcd.log"].id] and by_name["etcd.log"].text == "line\n" * 2000
    assert by_name["raw.bin"].content == b"\x00\x01\x02"
    assert [e.text for e in slack.ephemerals("C0A", "alice")] == ["only for alice"]
    assert [e.text for e in slack.ephemerals("C0A", "bob")] == ["for bob"]
    *split, excerpt, attachment = slack.messages("C0B")
    assert 1 < len(split) <= 4 and all(len(m.text.encode()) <= 3900 for m in split)
    assert "\n".join(m.text for m in split) == "\n".join(f"row {i:04d} " + "y" * 60 for i in range(120))
    assert excerpt.text.startswith("zzz") and excerpt.text.endswith("(full text attached as message.txt)")
    assert attachment.files == [by_name["message.txt"].id] and by_name["message.txt"].text == "z" * 50_000


def test_two_senders_share_the_outbox_without_reordering(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    for i in range(20):
        outbox.post("C0A", f"A-{i:02d}")
        outbox.post("C0B", f"B-{i:02d}")
    slack.inject(429, count=2, method="chat.postMessage", retry_after=1)
    first, second = sender_for(redis, slack), sender_for(redis, slack)
    stop = threading.Event()
    threads = [threading.Thread(target=s.run_forever, args=(stop,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    try:
        slack.wait_for(lambda: len(slack.all_messages("C0A")) + len(slack.all_messages("C0B")) == 40, 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert texts(slack, "C0A") == [f"A-{i:02d}" for i in range(20)]
    assert texts(slack, "C0B") == [f"B-{i:02d}" for i in range(20)]


def test_a_call_that_outlasts_the_lock_ttl_keeps_the_channel_and_is_sent_once(
    redis: Redis, slack: SlackSim
) -> None:
    outbox = Outbox(redis)
    for i in range(4):
        outbox.post("C0A", f"A-{i}")
    slack.delay(1.5, count=2, method="chat.postMessage", channel="C0A")
    slow, other = sender_for(redis, slack), sender_for(redis, slack)
    slow.lock_ttl_ms = other.lock_ttl_ms = 400
    first = threading.Thread(target=slow.service, args=("C0A",))
    first.start()
    try:
        slack.wait_for(lambda: slack.server.faults.pending() == 1, 5)
        # The first call now sleeps in Slack for 1.5 s, almost four lock TTLs: the other sender keeps
        # trying to take the channel, as a second replica would.
        while first.is_alive():
            assert other.service("C0A") == 0
            time.sleep(0.05)
    finally:
        first.join()
    assert slow.stats["sent"] == 4 and slow.stats["lost_lock"] == 0
    assert texts(slack, "C0A") == [f"A-{i}" for i in range(4)]
    assert len(slack.calls("chat.postMessage")) == 4
    assert outbox.pending("C0A") == 0


def test_a_sender_that_lost_its_lock_removes_nothing(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    outbox.post("C0A", "first")
    outbox.post("C0A", "second")
    slack.delay(1.0, count=1, method="chat.postMessage", channel="C0A")
    stalled, taker = sender_for(redis, slack), sender_for(redis, slack)
    first = threading.Thread(target=stalled.service, args=("C0A",))
    first.start()
    try:
        slack.wait_for(lambda: slack.server.faults.pending() == 0, 5)
        # While "first" sleeps in Slack, its sender's lock lapses, as it does when the sender cannot
        # reach Redis for a whole TTL, and another sender takes the channel and sends everything.
        redis.delete(keys.outbox_sender("C0A"))
        assert taker.service("C0A") == 2
        outbox.post("C0A", "third")
    finally:
        first.join()
    # The stalled sender's removal finds the lock gone and leaves "third", which it never sent, alone.
    assert stalled.stats == {**stalled.stats, "sent": 0, "lost_lock": 1}
    assert [json.loads(raw)["args"]["text"] for raw in redis.lrange(keys.outbox("C0A"), 0, -1)] == ["third"]
    assert taker.service("C0A") == 1
    # "first" twice: at least once when a lock is lost in flight (documented), never dropped.
    assert texts(slack, "C0A") == ["first", "second", "first", "third"]
    assert dead_letters(redis) == []


def test_a_refusal_is_dead_lettered_only_by_the_lock_holder(redis: Redis, slack: SlackSim) -> None:
    outbox = Outbox(redis)
    outbox.post("C0A", "refused once, slowly")
    slack.inject(200, error="channel_not_found", delay=1.0, method="chat.postMessage", channel="C0A")
    stalled = sender_for(redis, slack)
    first = threading.Thread(target=stalled.service, args=("C0A",))
    first.start()
    try:
        slack.wait_for(lambda: slack.server.faults.pending() == 0, 5)
        redis.set(keys.outbox_sender("C0A"), "another-replica")
    finally:
        first.join()
    # The refusal came back after the channel had passed to another sender: the entry is that
    # sender's to judge, so it is neither dead-lettered nor removed here.
    assert stalled.stats["dead"] == 0 and stalled.stats["lost_lock"] == 1
    assert dead_letters(redis) == [] and outbox.pending("C0A") == 1
    redis.delete(keys.outbox_sender("C0A"))
    assert sender_for(redis, slack).service("C0A") == 1
    assert texts(slack, "C0A") == ["refused once, slowly"]
