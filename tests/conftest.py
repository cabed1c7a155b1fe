"""Shared fixtures. Each test area uses its own Redis database on the machine's Redis (127.0.0.1:6379)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

ENGINE_DB = "redis://127.0.0.1:6379/1"
E2E_DB = "redis://127.0.0.1:6379/3"


@pytest.fixture
def redis() -> Iterator[Redis]:
    client = Redis.from_url(ENGINE_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
