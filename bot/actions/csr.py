"""CSR panel buttons: approve all valid, approve, approve a flagged one (after Slack's confirmation
dialog), deny, details. Clicks are checked here and queued for the step, which re-reads each CSR
before it acts; details are answered at once from the panel."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp

from bot.access import may_approve
from bot.deps import Deps
from procedures.csr_checks import describe, offered_digest
from procedures.i18n import t
from workers import keys
from workers.runs import RUNNING, RunStore

ACTIONS = re.compile(r"^csr:(approve_all|approve|approve_flagged|deny|details)$")


def register(app: AsyncApp, deps: Deps) -> None:
    async def csr_clicked(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        try:
            click(deps, body)
        except RedisError:
            deps.tell_without_redis(body)

    app.action(ACTIONS)(csr_clicked)


def click(deps: Deps, body: dict[str, Any]) -> str:
    """Check one click and queue it; returns what happened (queued, details, stale, not_approver)."""
    user = body.get("user", {}).get("id", "")
    channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
    action = (body.get("actions") or [{}])[0]
    kind = str(action.get("action_id", "")).removeprefix("csr:")
    token, _, rest = str(action.get("value", "")).partition("|")
    panel = {k.decode(): v.decode() for k, v in deps.redis.hgetall(keys.panel(token)).items()}
    run = RunStore(deps.redis).load(panel["run"]) if panel else None
    cluster = deps.clusters.by_name.get(run.cluster) if run else None
    language = deps.language(channel, cluster)
    steps = deps.procedures[run.procedure].steps if run else ()
    current = steps[run.step_index].id if run and run.step_index < len(steps) else None
    if not panel or run is None or run.status != RUNNING or current != panel["step"] or cluster is None:
        return _answer(deps, channel, user, t("click.stale", language, run=run.id if run else "?"), "stale")
    data = json.loads(panel["data"])
    if kind == "details":
        name = rest.split("|")[0]
        view = next((v for v in data["offered"] + data["watched"] if v["name"] == name), None)
        if view is None:
            return _answer(deps, channel, user, t("click.stale", language, run=run.id), "stale")
        return _answer(
            deps, channel, user, t("csr.click.details", language, details=describe(view, language)), "details"
        )
    if not may_approve(deps, user, cluster, fresh=kind == "approve_flagged"):
        return _answer(deps, channel, user, t("click.not_approver", language, run=run.id), "not_approver")
    if kind == "approve_flagged" and user == run.requester:
        # A CSR that failed a check is exactly what a second pair of eyes is for.
        return _answer(
            deps, channel, user, t("csr.click.requester_flagged", language, run=run.id), "requester"
        )
    request: dict[str, Any] = {"step": panel["step"], "user": user, "action": kind, "at": time.time()}
    if kind == "approve_all":
        if rest != offered_digest(data):
            return _answer(deps, channel, user, t("click.stale", language, run=run.id), "stale")
        request["uids"] = [v["uid"] for v in data["offered"] if v["pending"] and not v["problems"]]
        target = f"{len(request['uids'])} CSRs"
    else:
        request["csr"], _, request["uid"] = rest.partition("|")
        target = request["csr"]
    deps.redis.rpush(keys.requests(run.id), json.dumps(request))
    return _answer(deps, channel, user, t("csr.click.queued", language, action=kind, target=target), "queued")


def _answer(deps: Deps, channel: str, user: str, text: str, outcome: str) -> str:
    deps.outbox.ephemeral(channel, user, text)
    return outcome
