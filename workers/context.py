"""The StepContext the engine hands to procedure steps: SSH, the API, progress and abort.

Everything a step does goes through here, so here is where a lost lease stops it: no command is
sent and no API client handed out once the lease may be gone, and the API client's connections
are dropped when it is lost (the SSH side is stopped by the engine through the pool).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client
from redis import Redis

from procedures.clusters import Cluster, Host
from procedures.i18n import Msg
from procedures.steps import CommandResult
from workers import events, keys
from workers.journal import HOST_RESULT, Journal
from workers.kube import api_client
from workers.lease import Lease
from workers.runs import RETENTION, Run
from workers.ssh import SshPool
from workers.timeline import Timeline

PROGRESS_EVERY = 2.0
"""Seconds between progress reports, so a fast poll does not flood Slack with status edits."""
OUTPUT_IN_JOURNAL = 64 * 1024
TAKE_REQUESTS = 1000
"""Clicks taken at once from a run's requests list (a panel sees a handful per poll)."""
FAN_OUT = 10
"""At most this many hosts run a command at once (control planes have 3 or 5 hosts; hosted clusters more)."""


class RunContext:
    def __init__(
        self,
        redis: Redis,
        run: Run,
        cluster: Cluster,
        pool: SshPool,
        journal: Journal,
        step_id: str,
        lease: Lease,
    ) -> None:
        self.redis = redis
        self.run_state = run
        self.cluster = cluster
        self.pool = pool
        self.journal = journal
        self.step_id = step_id
        self.lease = lease
        self.timeline = Timeline(redis)
        self.outcome_unknown = False
        """A command of this step may have run without drbot learning how it ended (connection lost)."""
        self._api: client.ApiClient | None = None
        self._last_progress = 0.0
        lease.when_lost(self._drop_api)

    @property
    def params(self) -> Mapping[str, str]:
        return self.run_state.params

    @property
    def vars(self) -> Mapping[str, Any]:
        return self.run_state.vars

    def run(
        self,
        hosts: Sequence[Host],
        command: str,
        *,
        sudo: bool = False,
        timeout: float = 300.0,
        serial: bool = False,
    ) -> list[CommandResult]:
        self.lease.check()
        results = self.pool.run_many(
            list(hosts), command, sudo=sudo, timeout=timeout, serial=serial, max_parallel=FAN_OUT
        )
        return self._journaled(results)

    def copy(
        self,
        source: Host,
        path: str,
        targets: Sequence[Host],
        *,
        destination: str | None = None,
        timeout: float = 1800.0,
    ) -> list[CommandResult]:
        self.lease.check()
        return self._journaled(
            self.pool.copy(source, path, list(targets), destination=destination, timeout=timeout)
        )

    def _journaled(self, results: list[CommandResult]) -> list[CommandResult]:
        """Every host's exit code and (the end of its) output goes into the journal."""
        for result in results:
            self.outcome_unknown = self.outcome_unknown or result.outcome_unknown
            self.journal.append(
                HOST_RESULT,
                self.step_id,
                host=result.host,
                exit_code=result.exit_code,
                duration=round(result.duration, 3),
                error=result.error,
                stdout=result.stdout[-OUTPUT_IN_JOURNAL:],
                stderr=result.stderr[-OUTPUT_IN_JOURNAL:],
            )
        return results

    def kube(self) -> client.ApiClient:
        self.lease.check()
        if self._api is None:
            self._api = api_client(self.cluster)
        return self._api

    def progress(self, text: Msg) -> None:
        self.lease.check()
        now = time.monotonic()
        self.run_state.progress = text.to_json()
        if now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        self.redis.hset(keys.run(self.run_state.id), "progress", json.dumps(text.to_json()))
        events.emit(self.redis, events.PROGRESS, self.run_state.id, step=self.step_id, text=text.to_json())

    def publish(self, panel: str, data: Mapping[str, Any]) -> str:
        token = self._panel_token()
        key = keys.panel(token)
        encoded = json.dumps(data, sort_keys=True)
        if self.redis.hget(key, "data") == encoded.encode():
            return token
        self.redis.hset(
            key, mapping={"run": self.run_state.id, "step": self.step_id, "panel": panel, "data": encoded}
        )
        self.redis.expire(key, RETENTION)
        events.emit(self.redis, events.PANEL, self.run_state.id, step=self.step_id, token=token, panel=panel)
        return token

    def _panel_token(self) -> str:
        """One panel per step and run, whose token stays the same while the step runs."""
        name = f"panel_token:{self.step_id}"
        token = self.run_state.vars.get(name)
        if token is None:
            token = self.run_state.vars[name] = secrets.token_urlsafe(12)
            self.redis.hset(keys.run(self.run_state.id), "vars", json.dumps(self.run_state.vars))
        return str(token)

    def take_requests(self) -> list[dict[str, Any]]:
        raw = self.redis.lpop(keys.requests(self.run_state.id), TAKE_REQUESTS) or []
        return [request for request in map(json.loads, raw) if request.get("step") == self.step_id]

    def tell(self, who: str, kind: str, text: Msg) -> None:
        self.timeline.append(self.run_state.channel, kind, who, text, run=self.run_state.id)
        events.emit(
            self.redis, events.NOTE, self.run_state.id, step=self.step_id, who=who, text=text.to_json()
        )

    def aborted(self) -> bool:
        self.lease.check()
        return bool(self.redis.hget(keys.run(self.run_state.id), "abort_requested_by"))

    def close(self) -> None:
        self.lease.forget(self._drop_api)
        self._drop_api()

    def _drop_api(self) -> None:
        """Close the API client's connections; a call in flight fails instead of finishing late."""
        api, self._api = self._api, None
        if api is not None:
            api.close()
