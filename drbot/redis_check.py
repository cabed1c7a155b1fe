"""Start-up checks on the Redis that holds drbot's runs.

Run state, step journal, approvals, timeline, run leases and cluster locks live only in Redis
(ARCHITECTURE.md, principles 3, 4 and 7). An evicted lock lets a second run start on a cluster; an
evicted lease (leases have TTLs, so volatile-* policies pick them first) lets two workers act for
one run. So `drbot serve` and `drbot worker` refuse a Redis that may evict keys, and warn when a
Redis restart would forget every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ResponseError

from drbot.settings import SettingsError

log = logging.getLogger(__name__)

NO_EVICTION = "noeviction"


@dataclass(frozen=True)
class RedisSettings:
    """What the server says about eviction and persistence; None where it would not say."""

    maxmemory_policy: str | None
    appendonly: bool | None
    # CONFIG GET save: "" means no RDB snapshots.
    save: str | None
    # Why CONFIG GET could not be used ("" when it answered).
    config_refused: str = ""


@dataclass(frozen=True)
class Findings:
    refusal: str | None
    warnings: tuple[str, ...]


def check_redis(redis: Redis) -> None:
    """Refuse a Redis that may evict drbot's keys; warn when persistence is off or unknown."""
    findings = assess(read_settings(redis))
    for warning in findings.warnings:
        log.warning(warning)
    if findings.refusal:
        raise SettingsError(findings.refusal)


def read_settings(redis: Redis) -> RedisSettings:
    try:
        return RedisSettings(
            maxmemory_policy=_config(redis, "maxmemory-policy"),
            appendonly=_yes_no(_config(redis, "appendonly")),
            save=_config(redis, "save"),
        )
    except ResponseError as error:
        # Managed Redis services often rename or forbid CONFIG; INFO still tells the policy there.
        return _from_info(redis, str(error))


def _config(redis: Redis, name: str) -> str | None:
    # One parameter per call: CONFIG GET with several arguments needs Redis 7.
    value = redis.config_get(name).get(name)
    return None if value is None else str(value)


def _yes_no(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def _from_info(redis: Redis, config_refused: str) -> RedisSettings:
    try:
        memory, persistence = redis.info("memory"), redis.info("persistence")
    except ResponseError:
        return RedisSettings(None, None, None, config_refused)
    aof = persistence.get("aof_enabled")
    # INFO does not show the RDB save points, so `save` stays unknown.
    return RedisSettings(
        maxmemory_policy=memory.get("maxmemory_policy"),
        appendonly=None if aof is None else bool(aof),
        save=None,
        config_refused=config_refused,
    )


def assess(settings: RedisSettings) -> Findings:
    """The decision, on plain data: a refusal when keys may be evicted, warnings for the rest."""
    warnings = [w for w in (_policy_unknown(settings), _persistence_warning(settings)) if w]
    return Findings(refusal=_eviction_refusal(settings.maxmemory_policy), warnings=tuple(warnings))


def _eviction_refusal(policy: str | None) -> str | None:
    if policy is None or policy == NO_EVICTION:
        return None
    return (
        f"Redis (REDIS_URL) has maxmemory-policy {policy}, so it may evict keys when memory is full; "
        "drbot keeps its run state, step journal, cluster locks and run leases there and must never "
        "lose one (a volatile-* policy evicts the leases first, as they have TTLs, and two workers "
        "could then run the same step). Fix: redis-cli CONFIG SET maxmemory-policy noeviction, "
        "and keep it across restarts (CONFIG REWRITE, or `maxmemory-policy noeviction` in redis.conf; "
        "on a managed Redis, the maxmemory-policy parameter). The chart's own Redis "
        "(redis.internal.enabled=true) runs with noeviction."
    )


def _policy_unknown(settings: RedisSettings) -> str | None:
    if settings.maxmemory_policy is not None:
        return None
    return (
        f"could not check Redis's maxmemory-policy ({_why_unknown(settings)}); drbot needs noeviction, "
        "or Redis may evict run state, leases and cluster locks when memory is full. Check it in your "
        "Redis service's settings."
    )


def _persistence_warning(settings: RedisSettings) -> str | None:
    if settings.appendonly or settings.save:
        return None
    if settings.appendonly is False and settings.save == "":
        return (
            "Redis persistence is off (appendonly no, no RDB save points): if Redis restarts, every "
            "run's state, step journal, approvals, timeline and cluster locks are lost, and a "
            "restore in progress cannot resume. Fix: redis-cli CONFIG SET appendonly yes, "
            "CONFIG SET appendfsync everysec, then CONFIG REWRITE (or the same in redis.conf). "
            "The chart's own Redis runs with appendonly yes."
        )
    return (
        f"could not check whether Redis persists its data ({_why_unknown(settings)}); without AOF "
        "or RDB snapshots a Redis restart loses every run's state, journal, approvals, timeline and "
        "cluster locks. Check your Redis service's persistence settings."
    )


def _why_unknown(settings: RedisSettings) -> str:
    if settings.config_refused:
        return f"CONFIG GET was refused: {settings.config_refused}"
    return "the server did not report it"
