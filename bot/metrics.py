"""Prometheus metrics served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis import Redis

from workers import keys

REGISTRY = CollectorRegistry()
COMMANDS = Counter(
    "drbot_commands_total", "/dr commands answered, by subcommand", ["command"], registry=REGISTRY
)
CLICKS = Counter("drbot_gate_clicks_total", "Gate button clicks, by verdict", ["verdict"], registry=REGISTRY)
ACTIVE_RUNS = Gauge("drbot_active_runs", "Runs not finished yet", registry=REGISTRY)
OUTBOX_PENDING = Gauge("drbot_outbox_pending", "Slack calls waiting in the outbox", registry=REGISTRY)


def refresh(redis: Redis) -> None:
    """Gauges read from Redis when scraped, so every bot replica reports the same truth."""
    ACTIVE_RUNS.set(redis.scard(keys.active_runs()))
    channels = [c.decode() for c in redis.smembers(keys.outbox_channels())]
    OUTBOX_PENDING.set(sum(redis.llen(keys.outbox(c)) for c in channels))
