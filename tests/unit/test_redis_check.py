"""The start-up decision on Redis's settings, on plain data (the real server is in tests/integration)."""

from __future__ import annotations

import pytest

from drbot.redis_check import RedisSettings, assess

DURABLE = RedisSettings(maxmemory_policy="noeviction", appendonly=True, save="3600 1")


def test_noeviction_with_aof_and_snapshots_is_accepted_silently() -> None:
    findings = assess(DURABLE)
    assert findings.refusal is None and findings.warnings == ()


@pytest.mark.parametrize(
    "settings",
    [
        RedisSettings("noeviction", appendonly=True, save=""),
        RedisSettings("noeviction", appendonly=False, save="900 1 300 10"),
    ],
    ids=["aof-only", "rdb-only"],
)
def test_either_aof_or_rdb_counts_as_persistence(settings: RedisSettings) -> None:
    assert assess(settings).warnings == ()


@pytest.mark.parametrize(
    "policy",
    [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ],
)
def test_every_evicting_policy_is_refused_with_the_fix(policy: str) -> None:
    refusal = assess(RedisSettings(policy, appendonly=True, save="")).refusal
    assert refusal is not None
    assert f"maxmemory-policy {policy}" in refusal
    assert "CONFIG SET maxmemory-policy noeviction" in refusal
    assert "redis.internal.enabled=true" in refusal


def test_volatile_policies_are_explained_by_the_leases_ttls() -> None:
    refusal = assess(RedisSettings("volatile-ttl", appendonly=True, save="")).refusal
    assert refusal is not None and "leases" in refusal and "TTLs" in refusal


def test_persistence_off_is_a_warning_that_says_what_is_lost_and_the_fix() -> None:
    findings = assess(RedisSettings("noeviction", appendonly=False, save=""))
    assert findings.refusal is None
    (warning,) = findings.warnings
    assert "persistence is off" in warning
    assert "step journal" in warning and "cluster locks" in warning
    assert "CONFIG SET appendonly yes" in warning and "appendfsync everysec" in warning


def test_an_evicting_redis_without_persistence_is_refused_and_also_warned_about() -> None:
    findings = assess(RedisSettings("allkeys-lru", appendonly=False, save=""))
    assert findings.refusal is not None
    (warning,) = findings.warnings
    assert "persistence is off" in warning


def test_config_refused_and_info_silent_warns_for_both_and_goes_on() -> None:
    refused = "unknown command 'config'"
    findings = assess(RedisSettings(None, None, None, config_refused=refused))
    assert findings.refusal is None
    policy, persistence = findings.warnings
    assert "could not check Redis's maxmemory-policy" in policy and refused in policy
    assert "could not check whether Redis persists" in persistence and refused in persistence


def test_config_refused_but_info_shows_an_evicting_policy_is_still_refused() -> None:
    # What INFO tells when CONFIG is renamed: the policy and whether AOF is on, not the save points.
    settings = RedisSettings("volatile-lru", appendonly=False, save=None, config_refused="renamed")
    findings = assess(settings)
    assert findings.refusal is not None and "volatile-lru" in findings.refusal
    (warning,) = findings.warnings
    assert "could not check whether Redis persists" in warning


def test_config_refused_but_info_shows_aof_on_needs_no_warning() -> None:
    settings = RedisSettings("noeviction", appendonly=True, save=None, config_refused="renamed")
    assert assess(settings).warnings == ()


def test_a_server_that_does_not_report_a_setting_is_named_as_the_reason() -> None:
    (policy,) = assess(RedisSettings(None, appendonly=True, save="")).warnings
    assert "the server did not report it" in policy
