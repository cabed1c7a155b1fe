"""`drbot serve`: the Bolt app behind uvicorn (HTTP mode) or over Socket Mode, plus the background
notifier and outbox sender threads, and the health and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.deps import Deps
from bot.notifier import Notifier
from bot.outbox_sender import OutboxSender

log = logging.getLogger(__name__)


@dataclass
class Background:
    """The threads that send to Slack: the notifier (events → outbox) and the outbox sender."""

    notifier: Notifier
    sender: OutboxSender
    stop: threading.Event

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(
                target=self.notifier.run_forever, args=(self.stop,), name="notifier", daemon=True
            ),
            threading.Thread(target=self.sender.run_forever, args=(self.stop,), name="outbox", daemon=True),
        ]
        for thread in threads:
            thread.start()
        return threads


def web_app(app: AsyncApp, deps: Deps, background: Background) -> Starlette:
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            deps.redis.ping()
        except RedisError as error:
            return JSONResponse({"ready": False, "reason": f"Redis unreachable: {error}"}, status_code=503)
        return JSONResponse({"ready": True, "clusters": deps.clusters.names()})

    async def metrics_endpoint(request: Request) -> Response:
        with contextlib.suppress(RedisError):
            metrics.refresh(deps.redis)
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        threads = background.start()
        yield
        background.stop.set()
        for thread in threads:
            thread.join(timeout=5)

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ],
        lifespan=lifespan,
    )


def serve(
    app: AsyncApp, deps: Deps, background: Background, host: str, port: int, app_token: str = ""
) -> None:
    """Serve HTTP (events, health, metrics); with an app token, take Slack's requests over Socket Mode
    instead, keeping the health and metrics endpoints for the probes."""
    config = uvicorn.Config(
        web_app(app, deps, background), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    if not app_token:
        server.run()
        return

    async def both() -> None:
        handler = AsyncSocketModeHandler(app, app_token)
        await handler.connect_async()
        try:
            await server.serve()
        finally:
            await handler.close_async()

    asyncio.run(both())
