"""One stage for all end-to-end tests: a twin, the Slack simulator, `drbot serve` and a `drbot worker`.

Starting a twin takes seconds, so the tests share it; each test leaves the cluster idle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from drbot.stage import Stage
from tests.conftest import E2E_DB


@pytest.fixture(scope="session")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    # DRBOT_E2E_FIRST_ADDRESS pins the twin's addresses when other twins run on the machine.
    first = os.environ.get("DRBOT_E2E_FIRST_ADDRESS")
    with Stage(tmp_path_factory.mktemp("twin"), E2E_DB, lease_seconds=3, first_address=first) as running:
        yield running
