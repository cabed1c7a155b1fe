"""The notifier's lease and cursor against real Redis (db 13): one active notifier, fenced writes,
take-over where the last one stopped."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from redis import Redis

from bot.notifier import LeaseLost, Notifier
from bot.outbox import Outbox
from procedures.clusters import parse_clusters
from procedures.i18n import msg
from procedures.registry import PROCEDURES
from workers import events, keys
from workers.runs import Run, RunStore, new_run_id

REDIS_URL = "redis://127.0.0.1:6379/13"
CHANNEL = "C0INCIDENT"
CLUSTERS = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod",
                "channel": CHANNEL,
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [{"name": "m0", "address": "10.0.0.1"}],
            }
        ]
    }
)


@pytest.fixture
def db() -> Iterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def notifier(db: Redis) -> Notifier:
    return Notifier(db, Outbox(db), PROCEDURES, CLUSTERS, lambda run: "en", lease_ttl=5.0)


def start_run(db: Redis) -> str:
    run = RunStore(db).create(
        Run(id=new_run_id(), procedure="backup", cluster="prod", channel=CHANNEL, requester="U0ALICE")
    )
    events.emit(db, events.RUN_STARTED, run.id)
    return run.id


def emit_note(db: Redis, run_id: str, text: str) -> str:
    events.emit(
        db, events.NOTE, run_id, who="drbot", text=msg("note.added", user="U0ALICE", text=text).to_json()
    )
    return db.xrevrange(keys.events(), count=1)[0][0].decode()


def queued(db: Redis) -> list[tuple[str, str]]:
    """The outbox's calls as (op, text), in order."""
    entries = [json.loads(raw) for raw in db.lrange(keys.outbox(CHANNEL), 0, -1)]
    return [(e["op"], e["args"]["text"]) for e in entries]


def test_one_notifier_is_active_and_a_taker_continues_where_it_stopped(db: Redis) -> None:
    run_id = start_run(db)
    emit_note(db, run_id, "one")
    active, standby = notifier(db), notifier(db)
    assert active.hold_lease() and not standby.hold_lease()
    assert active.process() == 2
    last = emit_note(db, run_id, "two")

    # The active notifier's lease lapses (it stalled); the standby takes over meanwhile.
    db.delete(keys.notifier_lease())
    assert standby.hold_lease() and standby.cursor == active.cursor
    before = queued(db)
    with pytest.raises(LeaseLost):
        active.process()
    assert queued(db) == before and db.get(keys.notifier_cursor()).decode() == active.cursor
    assert standby.process() == 1 and db.get(keys.notifier_cursor()).decode() == last

    posts = [text for op, text in queued(db) if op == "post"]
    assert len(posts) == 3 and f"(run {run_id})" in posts[0]
    assert posts[1].endswith("noted: one") and posts[2].endswith("noted: two")
    assert [op for op, _ in queued(db)] == ["post", "post", "update", "post", "update"]


def test_a_notifier_that_shuts_down_hands_the_lease_over_at_once(db: Redis) -> None:
    leaving, taker = notifier(db), notifier(db)
    assert leaving.hold_lease()
    leaving.resign()
    assert db.get(keys.notifier_lease()) is None and taker.hold_lease()


def test_a_first_start_continues_after_the_consumer_group_of_earlier_versions(db: Redis) -> None:
    run_id = start_run(db)
    delivered = emit_note(db, run_id, "sent by the old version")
    db.xgroup_create(keys.events(), "notifier", id=delivered)
    emit_note(db, run_id, "new")
    upgraded = notifier(db)
    assert upgraded.hold_lease() and upgraded.cursor == delivered
    assert upgraded.process() == 1
    (post, update) = queued(db)
    assert post[0] == "post" and post[1].endswith("noted: new") and update[0] == "update"
