"""Buttons on a run's status message: retry a failed run from the step that failed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp

from bot.commands.dr import retry_run
from bot.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    async def retry_clicked(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        user = body.get("user", {}).get("id", "")
        channel = (body.get("channel") or {}).get("id", "")
        run_id = str((body.get("actions") or [{}])[0].get("value", ""))
        try:
            deps.outbox.ephemeral(channel, user, retry_run(deps, run_id, user, deps.language(channel)))
        except RedisError:
            deps.tell_without_redis(body)

    app.action("run:retry")(retry_clicked)
