"""Gate buttons: approve, reject, choose, re-run or skip. Every click is checked server-side.

The button's value is `<gate token>|<decision>`; the token says nothing by itself. The answer to a
refused or stale click is an ephemeral message to the clicker; the status message is left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp

from bot.access import may_approve
from bot.deps import Deps
from procedures.i18n import t
from workers.gates import Verdict, load_gate
from workers.runs import RunStore

log = logging.getLogger(__name__)

ACTIONS = re.compile(r"^gate:(approve|reject|choose:\d+|rerun|skip)$")


def register(app: AsyncApp, deps: Deps) -> None:
    async def gate_clicked(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        try:
            click(deps, body)
        except RedisError:
            deps.tell_without_redis(body)

    app.action(ACTIONS)(gate_clicked)


def click(deps: Deps, body: dict[str, Any]) -> Verdict | None:
    """Decide one click; answers the clicker through the outbox. Returns the verdict (None if unreadable)."""
    user = body.get("user", {}).get("id", "")
    channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
    action = (body.get("actions") or [{}])[0]
    token, _, value = str(action.get("value", "")).partition("|")
    language = deps.language(channel)
    if not token or not value or not channel:
        log.warning("unreadable gate click from %s: %r", user, action)
        return None
    gate = load_gate(deps.redis, token)
    run = RunStore(deps.redis).load(gate.run_id) if gate else None
    language = deps.language(channel, deps.clusters.by_name.get(run.cluster)) if run else language
    # A destructive gate re-reads the approver group: membership may have changed since it was cached.
    fresh = bool(gate and gate.destructive)
    is_approver = bool(run) and may_approve(deps, user, deps.clusters.get(run.cluster), fresh=fresh)
    decision = deps.control.decide(token, user, is_approver, value)
    if decision.verdict is not Verdict.ACCEPTED:
        run_id = decision.run.id if decision.run else "?"
        deps.outbox.ephemeral(channel, user, t(f"click.{decision.verdict.value}", language, run=run_id))
    return decision.verdict
