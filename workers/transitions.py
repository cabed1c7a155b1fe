"""Run transitions that must happen together, each one Lua script in Redis.

A crash, a lost connection or a second process can fall between two round trips, never inside one
script, so: a run is never created without its cluster lock (nor the lock taken without the run),
a finished run never keeps the lock, a gate is decided once, and an abort racing an approval either
stops the run at its gate or leaves the approved step running with the lock held, never both.

Scripts that a worker runs for a run it advances start with workers.fence.FENCE_CHECK: KEYS[1] is
the run's lease and ARGV[1] the worker's token ('' when the caller is the bot or an operator).
Gate keys are built inside the scripts from the run's `gate` field (keys.gate prefix passed in):
drbot runs on a single Redis, where a script may touch keys it did not declare.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from redis import Redis

from workers import keys
from workers.fence import FENCE_CHECK

_FINISHED = "local finished = {succeeded = true, failed = true, aborted = true} "

_FINISH_BODY = """
redis.call('hset', run_key, unpack(fields))
redis.call('srem', active_key, run_id)
if redis.call('get', lock_key) == run_id then redis.call('del', lock_key) end
local gate = redis.call('hget', run_key, 'gate')
if gate and gate ~= '' then redis.call('del', gate_prefix .. gate) end
for _, key in ipairs(expiring) do redis.call('expire', key, retention) end
"""
"""Mark the run finished with `fields`, release its lock and open gate, and let its keys expire."""


def _pairs(mapping: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in mapping.items():
        out += [name, value if isinstance(value, str) else json.dumps(value)]
    return out


_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return {'collision'} end
local owner = redis.call('get', KEYS[2])
if owner then return {'busy', owner} end
redis.call('set', KEYS[2], ARGV[1])
redis.call('hset', KEYS[1], unpack(ARGV, 2))
redis.call('sadd', KEYS[3], ARGV[1])
redis.call('lpush', KEYS[4], ARGV[1])
redis.call('ltrim', KEYS[4], 0, 199)
return {'ok'}
"""


def create(redis: Redis, run_id: str, cluster: str, fields: Mapping[str, str]) -> tuple[str, str]:
    """("ok", ""), ("busy", owner run id) or ("collision", "") when the id is taken."""
    answer = redis.eval(
        _CREATE,
        4,
        keys.run(run_id),
        keys.cluster_lock(cluster),
        keys.active_runs(),
        keys.cluster_runs(cluster),
        run_id,
        *_pairs(fields),
    )
    return _answer(answer)


_FINISH = (
    FENCE_CHECK
    + """
local run_key, active_key, lock_key = KEYS[2], KEYS[3], KEYS[4]
local run_id, gate_prefix, retention = ARGV[2], ARGV[3], ARGV[4]
local expiring = {KEYS[2], KEYS[5], KEYS[6]}
local fields = {unpack(ARGV, 5)}
"""
    + _FINISH_BODY
    + "return 1"
)


def finish(
    redis: Redis, lease: tuple[str, str], run_id: str, cluster: str, fields: Mapping[str, Any], retention: int
) -> None:
    """Finish a run (fields include its status) and release the cluster lock, in one step."""
    redis.eval(
        _FINISH,
        6,
        lease[0],
        keys.run(run_id),
        keys.active_runs(),
        keys.cluster_lock(cluster),
        keys.journal(run_id),
        keys.requests(run_id),
        lease[1],
        run_id,
        keys.gate(""),
        retention,
        *_pairs(fields),
    )


_OPEN_GATE = (
    FENCE_CHECK
    + """
local by = redis.call('hget', KEYS[2], 'abort_requested_by')
if by and by ~= '' then return 0 end
local count = tonumber(ARGV[3])
redis.call('hset', KEYS[3], unpack(ARGV, 4, 3 + count))
redis.call('expire', KEYS[3], ARGV[2])
redis.call('hset', KEYS[2], unpack(ARGV, 4 + count))
return 1
"""
)


def open_gate(
    redis: Redis,
    lease: tuple[str, str],
    run_id: str,
    token: str,
    gate: Mapping[str, Any],
    run_fields: Mapping[str, Any],
    retention: int,
) -> bool:
    """Store the gate and mark the run waiting at it; False (nothing written) if an abort came first."""
    gate_args = _pairs(gate)
    return bool(
        redis.eval(
            _OPEN_GATE,
            3,
            lease[0],
            keys.run(run_id),
            keys.gate(token),
            lease[1],
            retention,
            len(gate_args),
            *gate_args,
            *_pairs(run_fields),
        )
    )


_DECIDE = """
if redis.call('exists', KEYS[1]) == 0 then return 'taken' end
if redis.call('hget', KEYS[2], 'status') ~= 'waiting' or redis.call('hget', KEYS[2], 'gate') ~= ARGV[1] then
  return 'stale'
end
redis.call('del', KEYS[1])
redis.call('rpush', KEYS[3], ARGV[2])
redis.call('hset', KEYS[2], 'status', 'running', 'gate', '')
return 'ok'
"""


def decide(redis: Redis, run_id: str, token: str, journal_entry: Mapping[str, Any]) -> str:
    """Close the run's current gate with a decision: "ok", "taken" (decided already) or "stale"."""
    answer = redis.eval(
        _DECIDE, 3, keys.gate(token), keys.run(run_id), keys.journal(run_id), token, json.dumps(journal_entry)
    )
    return answer.decode() if isinstance(answer, bytes) else str(answer)


_ABORT = (
    _FINISHED
    + """
local run_key, active_key, lock_key = KEYS[1], KEYS[3], KEYS[4]
local run_id, gate_prefix, retention = ARGV[2], ARGV[3], ARGV[4]
local expiring = {KEYS[1], KEYS[5], KEYS[6]}
local fields = {unpack(ARGV, 5)}
local status = redis.call('hget', run_key, 'status')
if not status then return {'missing'} end
if finished[status] then return {'finished', status} end
redis.call('hset', run_key, 'abort_requested_by', ARGV[1])
if status == 'running' and redis.call('exists', KEYS[2]) == 1 then return {'requested'} end
"""
    + _FINISH_BODY
    + "return {'aborted'}"
)


def abort(redis: Redis, run_id: str, cluster: str, user: str, retention: int) -> tuple[str, str]:
    """Abort: ("aborted", "") when the run stopped now (it waited, or no worker held it),
    ("requested", "") when a worker holds it (its current step's end decides),
    ("finished", status) or ("missing", "")."""
    fields = {"status": "aborted", "finished_at": repr(time.time()), "result": {"by": user}, "progress": {}}
    return _answer(
        redis.eval(
            _ABORT,
            6,
            keys.run(run_id),
            keys.lease(run_id),
            keys.active_runs(),
            keys.cluster_lock(cluster),
            keys.journal(run_id),
            keys.requests(run_id),
            user,
            run_id,
            keys.gate(""),
            retention,
            *_pairs(fields),
        )
    )


_REOPEN = """
if redis.call('hget', KEYS[1], 'status') ~= 'failed' then return {'not_failed'} end
local owner = redis.call('get', KEYS[2])
if owner then return {'busy', owner} end
redis.call('set', KEYS[2], ARGV[1])
redis.call('hset', KEYS[1], unpack(ARGV, 2))
redis.call('sadd', KEYS[3], ARGV[1])
for i = 1, #KEYS do if i ~= 2 and i ~= 3 then redis.call('persist', KEYS[i]) end end
return {'ok'}
"""


def reopen(redis: Redis, run_id: str, cluster: str) -> tuple[str, str]:
    """Take the lock again for a failed run and mark it running.

    ("ok", ""), ("busy", owner run id) or ("not_failed", "")."""
    fields = {"status": "running", "finished_at": "0.0", "result": {}, "revivals": "0", "revive_after": "0"}
    return _answer(
        redis.eval(
            _REOPEN,
            5,
            keys.run(run_id),
            keys.cluster_lock(cluster),
            keys.active_runs(),
            keys.journal(run_id),
            keys.requests(run_id),
            run_id,
            *_pairs(fields),
        )
    )


_REVIVE = (
    _FINISHED
    + """
local run_key, active_key, lock_key = KEYS[1], KEYS[4], KEYS[5]
local run_id, gate_prefix, retention = ARGV[1], ARGV[2], ARGV[3]
local now, most, wake_seconds = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local expiring = {KEYS[1], KEYS[6], KEYS[7]}
local fields = {unpack(ARGV, 7)}
if redis.call('hget', run_key, 'status') ~= 'running' then return 'skip' end
if redis.call('exists', KEYS[2]) == 1 or redis.call('exists', KEYS[3]) == 1 then return 'skip' end
if tonumber(redis.call('hget', run_key, 'revive_after') or '0') > now then return 'later' end
local revivals = tonumber(redis.call('hget', run_key, 'revivals') or '0')
if revivals >= most then
"""
    + _FINISH_BODY
    + """
  return 'failed'
end
redis.call('hset', run_key, 'revivals', revivals + 1, 'revive_after', now + math.min(60, 2 ^ revivals))
redis.call('set', KEYS[3], '1', 'EX', wake_seconds)
return 'revive'
"""
)


def revive(
    redis: Redis,
    run_id: str,
    cluster: str,
    now: float,
    most: int,
    wake_seconds: int,
    failed_fields: Mapping[str, Any],
    retention: int,
) -> str:
    """For a running run that no worker holds and nothing is queued for: "revive" (queue it now;
    counted, with a backoff before the next revival), "later" (backing off), "failed" (revived
    `most` times without a step finishing: finished with `failed_fields`), or "skip"."""
    answer = redis.eval(
        _REVIVE,
        7,
        keys.run(run_id),
        keys.lease(run_id),
        keys.wake(run_id),
        keys.active_runs(),
        keys.cluster_lock(cluster),
        keys.journal(run_id),
        keys.requests(run_id),
        run_id,
        keys.gate(""),
        retention,
        now,
        most,
        wake_seconds,
        *_pairs(failed_fields),
    )
    return answer.decode() if isinstance(answer, bytes) else str(answer)


_UNLOCK = (
    _FINISHED
    + """
local owner = redis.call('get', KEYS[1])
if not owner then return {'free'} end
local status = redis.call('hget', ARGV[1] .. owner, 'status')
if status and not finished[status] then return {'alive', owner} end
redis.call('del', KEYS[1])
return {'released', owner}
"""
)


def unlock(redis: Redis, cluster: str) -> tuple[str, str]:
    """Release a cluster lock whose run is finished or gone.

    ("released", run id), ("alive", run id) when its run goes on, or ("free", "")."""
    return _answer(redis.eval(_UNLOCK, 1, keys.cluster_lock(cluster), keys.run("")))


def _answer(raw: list[bytes | str]) -> tuple[str, str]:
    words = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
    return words[0], words[1] if len(words) > 1 else ""
