"""Refuse a signed request that was seen before.

Slack signs each request with a timestamp and Bolt refuses a signature older than five minutes, but
within those five minutes a captured request would be accepted again: a second `/dr restore`, a
second click. Each signature is remembered in Redis for longer than that window; one seen before is
refused with 401. Bolt's signature check runs before this, so forged signatures never get here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redis import Redis
from redis.exceptions import RedisError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from workers import keys

log = logging.getLogger(__name__)

REMEMBER_SECONDS = 600
"""Longer than the 5 minutes within which Bolt accepts a signature's timestamp."""


def refuse_replays(
    redis: Redis,
) -> Callable[
    [AsyncBoltRequest, BoltResponse, Callable[[], Awaitable[BoltResponse]]], Awaitable[BoltResponse]
]:
    async def middleware(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if req.mode != "http" or not signature:
            return await next()  # Socket Mode requests arrive over drbot's own authenticated socket
        try:
            first = redis.set(keys.seen_request(signature), "1", nx=True, ex=REMEMBER_SECONDS)
        except RedisError:
            # Without Redis nothing can change, and the listener still owes the person an answer
            # ("Redis is unavailable"), so the request goes on.
            first = True
        if not first:
            log.warning("refused a replayed signed request (signature seen before)")
            return BoltResponse(status=401, body="this request was already received")
        return await next()

    return middleware
