"""Fenced writes: a worker's writes for a run take effect only while it holds the run's lease.

`FencedRedis` is the Redis client the engine, the journal, the timeline and the step context use
while a worker advances a run. Each write command is sent inside one Lua script that first checks,
in Redis and atomically with the write, that the lease key still holds this worker's token; the
client also refuses to send anything once its own clock says the lease may be gone. A worker that
lost its lease (Redis paused, a long GC stall, a network split) therefore cannot change the run's
state, journal, gates or timeline, even when its messages reach Redis late.

Why a client subclass and not explicit calls at every write: the journal, the timeline, the events
and the run store are shared with the bot, which holds no lease. Handing them a fenced client makes
every write of a worker fenced, including ones added later, without a second way to write.

Multi-command transitions (finish + release, open a gate) are Lua scripts in workers/transitions.py
that take the lease key and token as KEYS[1] and ARGV[1]; this client lets a script through only
when it carries its own lease that way. Pipelines are refused: their commands bypass the fence.
Writes are never retried by the client: a write whose answer was lost may have been applied, so the
engine stops advancing instead (the journal then says what is known).
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError

from workers.lease import Lease, LeaseLost

LEASE_LOST = "DRBOT_LEASE_LOST"
"""The error a fenced script answers when the lease is not the caller's (see workers/transitions.py)."""

FENCE_CHECK = (
    "if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then "
    f"return redis.error_reply('{LEASE_LOST}') end "
)
"""The first line of every script that writes for a run: an empty token means the caller holds no
lease (the bot, an operator's command) and the script's own conditions decide."""

_FENCED_COMMAND = FENCE_CHECK + "return redis.call(unpack(ARGV, 2))"

READS = frozenset(
    {
        "EXISTS",
        "GET",
        "HEXISTS",
        "HGET",
        "HGETALL",
        "HMGET",
        "LINDEX",
        "LLEN",
        "LRANGE",
        "MGET",
        "PING",
        "SCRIPT LOAD",
        "PTTL",
        "SCARD",
        "SISMEMBER",
        "SMEMBERS",
        "STRLEN",
        "TTL",
        "TYPE",
        "XLEN",
        "XRANGE",
        "XREVRANGE",
    }
)
"""Commands that change no data (SCRIPT LOAD only caches a script); every other command is treated
as a write and fenced."""


class FencedRedis(Redis):
    def __init__(self, redis: Redis, lease: Lease) -> None:
        super().__init__(connection_pool=redis.connection_pool)
        self.lease = lease

    def execute_command(self, *args: Any, **options: Any) -> Any:
        name = str(args[0]).upper()
        self.lease.check()
        if name in READS:
            answer = super().execute_command(*args, **options)
        elif name in ("EVAL", "EVALSHA"):
            self._check_script(args)
            answer = _lease_errors(super().execute_command, *args, **options)
        else:
            answer = _lease_errors(
                super().execute_command, "EVAL", _FENCED_COMMAND, 1, self.lease.key, self.lease.token, *args
            )
        # A call that came back after the lease was lost (Redis paused) must not be acted on.
        self.lease.check()
        return answer

    def _check_script(self, args: tuple[Any, ...]) -> None:
        keys_count = int(args[2])
        if keys_count < 1 or args[3] != self.lease.key or args[3 + keys_count] != self.lease.token:
            raise TypeError("a script sent through FencedRedis must take the lease as KEYS[1] and ARGV[1]")

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        raise TypeError("pipelines bypass the lease check; write with single commands or a fenced script")


def _lease_errors(call: Any, *args: Any, **options: Any) -> Any:
    try:
        return call(*args, **options)
    except ResponseError as error:
        if LEASE_LOST in str(error):
            raise LeaseLost(
                f"Redis refused a write: the lease {args[3]} is no longer this worker's"
            ) from None
        raise
