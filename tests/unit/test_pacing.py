"""Pacing of Slack calls (bot/pacing.py) with a hand-moved clock."""

from __future__ import annotations

import pytest

from bot.pacing import DEFAULT_RATES, MethodRates, Pacer, Rate, TokenBucket, backoff_delay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_one_call_per_interval() -> None:
    bucket = TokenBucket(Rate(1.0, 3), now=0.0)
    for _ in range(3):
        assert bucket.wait(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(1.0)
    assert bucket.wait(0.4) == pytest.approx(0.6)
    assert bucket.wait(1.0) == 0.0


def test_bucket_never_refills_past_its_burst() -> None:
    bucket = TokenBucket(Rate(2.0, 2), now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.wait(3600.0) == 0.0
    bucket.take(3600.0)
    bucket.take(3600.0)
    assert bucket.wait(3600.0) == pytest.approx(0.5)


def test_post_message_is_paced_per_channel() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    sent = [pacer.acquire("C1", "chat.postMessage") for _ in range(3)]
    assert sent == [0.0, 0.0, 0.0]
    assert pacer.acquire("C1", "chat.postMessage") == pytest.approx(1.0)
    assert pacer.acquire("C2", "chat.postMessage") == 0.0
    clock.now += 1.0
    assert pacer.acquire("C1", "chat.postMessage") == 0.0


def test_waiting_does_not_consume_a_token() -> None:
    clock = Clock()
    pacer = Pacer({"m": MethodRates(per_channel=Rate(1.0, 1))}, clock)
    assert pacer.acquire("C1", "m") == 0.0
    assert pacer.acquire("C1", "m") == pytest.approx(1.0)
    assert pacer.acquire("C1", "m") == pytest.approx(1.0)
    clock.now += 1.0
    assert pacer.acquire("C1", "m") == 0.0


def test_workspace_rate_is_shared_by_all_channels() -> None:
    clock = Clock()
    pacer = Pacer({"chat.update": MethodRates(workspace=Rate(50 / 60, 2))}, clock)
    assert pacer.acquire("C1", "chat.update") == 0.0
    assert pacer.acquire("C2", "chat.update") == 0.0
    assert pacer.acquire("C3", "chat.update") == pytest.approx(60 / 50)


def test_a_429_holds_the_channel_but_not_others() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.hold("C1", 30, "chat.postMessage")
    assert pacer.delay("C1", "chat.postMessage") == pytest.approx(30)
    assert pacer.delay("C1", "response_url") == pytest.approx(30)
    assert pacer.delay("C2", "response_url") == 0.0
    clock.now += 30
    assert pacer.delay("C1", "chat.postMessage") == 0.0


def test_a_429_on_a_workspace_method_holds_that_method_everywhere() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.hold("C1", 5, "chat.update")
    assert pacer.delay("C2", "chat.update") == pytest.approx(5)
    assert pacer.delay("C2", "chat.postMessage") == 0.0


def test_unknown_method_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match=r"views\.open"):
        Pacer(clock=Clock()).acquire("C1", "views.open")


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="per_second > 0"):
        Rate(0.0, 1)


def test_default_rates_follow_slack_tiers() -> None:
    post = DEFAULT_RATES["chat.postMessage"]
    assert post.per_channel == Rate(1.0, 3)
    assert DEFAULT_RATES["chat.update"].workspace.per_second * 60 == pytest.approx(50)
    assert DEFAULT_RATES["chat.postEphemeral"].workspace.per_second * 60 == pytest.approx(100)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 60.0) for n in range(0, 9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
