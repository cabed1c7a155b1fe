"""Shared fixtures. Each test area uses its own Redis database on the machine's Redis (127.0.0.1:6379).

`make test` runs the suite on several pytest-xdist workers, since most tests wait on twins, sshd and
etcd rather than compute. Tests that share something (a Redis database, a session twin, fixed
loopback addresses) are kept on one worker by an `xdist_group`: every test that uses the shared
end-to-end stage, every test that uses the engine's database, each directory whose session fixtures
start servers on fixed addresses, and otherwise each module on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

ENGINE_DB = "redis://127.0.0.1:6379/1"
E2E_DB = "redis://127.0.0.1:6379/3"


SHARED_FIXTURES = {"stage": "e2e-stage", "redis": "engine-db"}
"""Fixtures whose tests must run on one worker: the e2e twin, and the engine's Redis database."""
ONE_GROUP_DIRECTORIES = ("kubeapi", "twin", "unit")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))


def _group(item: pytest.Item) -> str:
    for fixture, group in SHARED_FIXTURES.items():
        if fixture in getattr(item, "fixturenames", ()):
            return group
    directory = item.path.parent.name
    return directory if directory in ONE_GROUP_DIRECTORIES else f"{directory}/{item.path.stem}"


@pytest.fixture
def redis() -> Iterator[Redis]:
    client = Redis.from_url(ENGINE_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
