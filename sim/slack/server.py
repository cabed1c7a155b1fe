"""The simulator's HTTP and WebSocket server (aiohttp on its own thread and event loop).

Routes, all on one loopback port:
  /api/{method}      the Web API (base URL for slack_sdk's WebClient is http://127.0.0.1:PORT/api/)
  /response/{token}  response_urls handed out with slash commands and clicks
  /upload/{file_id}  the raw upload step of files_upload_v2
  /link              Socket Mode WebSocket (apps.connections.open points here)
  /_sim/faults       POST {"count", "status", "method", "retry_after", "error", "channel", "delay"} queues
                     faults (status 200 without error plus a delay: a slow call that succeeds);
                     DELETE clears them
  /_sim/ratelimit    POST {"enabled", "per_second", "burst"} switches chat.postMessage enforcement
  /_sim/calls        GET: every recorded call as JSON
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from sim.slack.faults import Fault, FaultPlan, PostingLimit
from sim.slack.response_urls import ResponseUrls
from sim.slack.webapi import ApiError, WebApi
from sim.slack.workspace import Call, Workspace

log = logging.getLogger(__name__)

HELLO = {
    "type": "hello",
    "num_connections": 1,
    "debug_info": {"host": "sim-slack", "build_number": 1, "approximate_connection_time": 18060},
    "connection_info": {"app_id": "A0DRBOT"},
}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


class SocketLink:
    """Open Socket Mode connections and the envelopes waiting for their ack."""

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.pending: dict[str, asyncio.Future[Any]] = {}

    async def deliver(self, kind: str, payload: dict[str, Any], timeout: float) -> tuple[int, Any]:
        """Send an envelope on the newest connection; (200, ack payload) or (504, reason) without an ack."""
        deadline = time.monotonic() + timeout
        while not self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not self.connections:
            return 503, "no Socket Mode connection is open (did the bot call apps.connections.open?)"
        envelope_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[envelope_id] = future
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands",
        }
        try:
            await self.connections[-1].send_str(json.dumps(envelope))
            ack = await asyncio.wait_for(future, max(0.01, deadline - time.monotonic()))
            return 200, ack
        except TimeoutError:
            return 504, "the app did not ack the envelope in time"
        finally:
            self.pending.pop(envelope_id, None)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        try:
            await ws.send_str(json.dumps(HELLO))
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    log.warning("Socket Mode: ignoring a frame that is not JSON: %.200s", msg.data)
                    continue
                future = self.pending.get(str(data.get("envelope_id")))
                if future is not None and not future.done():
                    future.set_result(data.get("payload"))
        finally:
            self.connections.remove(ws)
        return ws


class SlackServer:
    """Serves a Workspace. start() binds 127.0.0.1:port (0 = any free port) and returns at once."""

    def __init__(
        self,
        workspace: Workspace,
        bot_token: str,
        app_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError(f"the Slack simulator binds loopback only, got host {host!r}")
        self.ws = workspace
        self.bot_token = bot_token
        self.app_token = app_token
        self.host = host
        self.port = port
        self.faults = FaultPlan()
        self.posting_limit: PostingLimit | None = None
        self.api = WebApi(workspace, lambda: self.root)
        self.response_urls = ResponseUrls(workspace)
        self.link = SocketLink()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def base_url(self) -> str:
        return f"{self.root}api/"

    def response_url(self, token: str) -> str:
        return f"{self.root}response/{token}"

    def start(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the Slack simulator already runs on {self.root}; stop() it first")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:
                failure.append(exc)
                loop.run_until_complete(self._stop_site())
                loop.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._thread = threading.Thread(target=run, name="slack-sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the Slack simulator did not start within {timeout} s")
        if failure:
            self._thread = None
            raise RuntimeError(
                f"the Slack simulator could not listen on {self.host}:{self.port}: {failure[0]}"
            )

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self._thread = None
        self.loop = None

    def run_coroutine(self, coro: Any, timeout: float) -> Any:
        if self.loop is None:
            raise RuntimeError("the Slack simulator is not running; call start() first")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout + 1)

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{token}", self._response)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link", self.link.handle)
        app.router.add_post("/_sim/faults", self._add_fault)
        app.router.add_delete("/_sim/faults", self._clear_faults)
        app.router.add_post("/_sim/ratelimit", self._ratelimit)
        app.router.add_get("/_sim/calls", self._calls)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop_site(self) -> None:
        for conn in list(self.link.connections):
            await conn.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _record(self, method: str, args: dict[str, Any], status: int, error: str | None = None) -> None:
        self.ws.record(Call(method, args, time.time(), status, error))

    async def _fault_response(self, method: str, args: dict[str, Any]) -> web.Response | None:
        """The error answer of a fault that matches this call, after its delay; None to answer normally.
        The delay sleeps on the event loop, so other calls are answered meanwhile, as Slack would."""
        channel = args.get("channel") or args.get("channel_id")
        fault = self.faults.take(method, str(channel) if channel else None)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if not fault.refuses:
            return None
        self._record(method, args, fault.status, fault.body_error)
        headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else None
        return _json(fault.status, {"ok": False, "error": fault.body_error}, headers)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if raw:
            if request.content_type == "application/json":
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or args.pop(
            "token", ""
        )
        args.pop("token", None)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if not token:
            self._record(method, args, 200, "not_authed")
            return _json(200, {"ok": False, "error": "not_authed"})
        if token != expected:
            self._record(method, args, 200, "invalid_auth")
            return _json(200, {"ok": False, "error": "invalid_auth"})
        faulted = await self._fault_response(method, args)
        if faulted is not None:
            return faulted
        if method == "chat.postMessage" and self.posting_limit is not None:
            wait = self.posting_limit.check(str(args.get("channel")))
            if wait:
                self._record(method, args, 429, "ratelimited")
                return _json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)})
        if method == "apps.connections.open":
            self._record(method, args, 200)
            return _json(200, {"ok": True, "url": f"ws://{self.host}:{self.port}/link?ticket={uuid.uuid4()}"})
        try:
            body = self.api.call(method, args)
        except ApiError as exc:
            self._record(method, args, 200, exc.error)
            return _json(200, {"ok": False, "error": exc.error, **exc.extra})
        self._record(method, args, 200)
        return _json(200, {"ok": True, **body})

    async def _response(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        raw = await request.read()
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            payload = None
        args = {"token": token, "payload": payload}
        faulted = await self._fault_response("response_url", args)
        if faulted is not None:
            return faulted
        status, body = self.response_urls.post(token, payload)
        self._record("response_url", args, status, None if status == 200 else body.get("error"))
        return _json(status, body)

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        args = {"file_id": file_id, "length": len(data)}
        faulted = await self._fault_response("files.upload", args)
        if faulted is not None:
            return faulted
        with self.ws.lock:
            uploaded = self.ws.files.get(file_id)
            if uploaded is not None:
                uploaded.content = data
        status = 200 if uploaded is not None else 404
        self._record("files.upload", args, status, None if uploaded else "file_not_found")
        return web.Response(status=status, text="OK - " + str(len(data)) if uploaded else "file_not_found")

    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            self.faults.add(Fault(**spec))
        except (ValueError, TypeError) as exc:
            return _json(400, {"ok": False, "error": f"bad fault spec: {exc}"})
        return _json(200, {"ok": True, "pending": self.faults.pending()})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return _json(200, {"ok": True})

    async def _ratelimit(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if spec.get("enabled", True):
            self.posting_limit = PostingLimit(float(spec.get("per_second", 1.0)), int(spec.get("burst", 4)))
        else:
            self.posting_limit = None
        return _json(200, {"ok": True})

    async def _calls(self, request: web.Request) -> web.Response:
        with self.ws.lock:
            calls = [asdict(c) for c in self.ws.calls]
        return web.json_response({"ok": True, "calls": calls}, dumps=lambda o: json.dumps(o, default=str))
