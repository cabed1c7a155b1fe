"""The Bolt app: listeners registered by kind (commands, actions), acks before anything slow."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import csr, gates, runs
from bot.commands import dr
from bot.deps import Deps
from bot.replay import refuse_replays


def build_app(deps: Deps, *, token: str, signing_secret: str, api_url: str) -> AsyncApp:
    # process_before_response: the listener runs inline and acks in about 1 ms; Bolt's default path
    # polls for the ack every 10 ms (shared/reference/performance-anchors.md, observation 6).
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_url),
        signing_secret=signing_secret,
        process_before_response=True,
    )
    app.use(refuse_replays(deps.redis))
    dr.register(app, deps)
    gates.register(app, deps)
    csr.register(app, deps)
    runs.register(app, deps)
    return app
