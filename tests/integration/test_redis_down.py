"""With Redis unreachable, a command or a click gets a clear answer and nothing is half-done."""

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from slack_sdk import WebClient

from bot.commands.dr import answer
from bot.deps import Deps
from bot.outbox import Outbox
from procedures.clusters import parse_clusters
from procedures.registry import PROCEDURES
from sim.slack.driver import SlackSim

CLUSTERS = parse_clusters(
    {
        "clusters": [
            {
                "name": "prod",
                "ssh": {"key": "/k", "known_hosts": "/kh"},
                "hosts": [{"name": "m0", "address": "10.0.0.1"}],
            }
        ]
    }
)


def test_a_command_while_redis_is_down_says_so() -> None:
    dead = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 1))
    deps = Deps(
        redis=dead,
        clusters=CLUSTERS,
        procedures=PROCEDURES,
        outbox=Outbox(dead),
        web=WebClient(token="xoxb-x", base_url="http://127.0.0.1:9/"),
    )
    reply = answer(deps, {"channel_id": "C1", "user_id": "U1", "text": "backup prod"})
    assert reply["response_type"] == "ephemeral"
    assert "cannot reach its Redis" in reply["text"] and "nothing was changed" in reply["text"]


def test_a_click_while_redis_is_down_is_answered_through_its_response_url() -> None:
    dead = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 1))
    with SlackSim(channels={"C1": "incident"}) as slack:
        deps = Deps(
            redis=dead,
            clusters=CLUSTERS,
            procedures=PROCEDURES,
            outbox=Outbox(dead),
            web=WebClient(token="xoxb-x", base_url=slack.url),
        )
        deps.tell_without_redis(
            {"user": {"id": "U0ALICE"}, "response_url": slack.response_url("C1", "U0ALICE")}
        )
        (answer_seen,) = slack.wait_for(lambda: slack.ephemerals("C1", "U0ALICE"), timeout=5)
    assert "cannot reach its Redis" in answer_seen.text
