"""The StepContext the engine hands to procedure steps: SSH, the API, progress and abort."""

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
from workers.runs import Run
from workers.ssh import SshPool
from workers.timeline import Timeline

PROGRESS_EVERY = 2.0
"""Seconds between progress reports, so a fast poll does not flood Slack with status edits."""
OUTPUT_IN_JOURNAL = 64 * 1024
FAN_OUT = 10
"""At most this many hosts run a command at once (control planes have 3 or 5 hosts; hosted clusters more)."""


class RunContext:
    def __init__(
        self, redis: Redis, run: Run, cluster: Cluster, pool: SshPool, journal: Journal, step_id: str
    ) -> None:
        self.redis = redis
        self.run_state = run
        self.cluster = cluster
        self.pool = pool
        self.journal = journal
        self.step_id = step_id
        self.timeline = Timeline(redis)
        self._api: client.ApiClient | None = None
        self._last_progress = 0.0

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
        return self._journaled(
            self.pool.copy(source, path, list(targets), destination=destination, timeout=timeout)
        )

    def _journaled(self, results: list[CommandResult]) -> list[CommandResult]:
        """Every host's exit code and (the end of its) output goes into the journal."""
        for result in results:
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
        if self._api is None:
            self._api = api_client(self.cluster)
        return self._api

    def progress(self, text: Msg) -> None:
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
        key = keys.requests(self.run_state.id)
        with self.redis.pipeline() as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = pipe.execute()
        return [request for request in map(json.loads, raw) if request.get("step") == self.step_id]

    def tell(self, who: str, kind: str, text: Msg) -> None:
        self.timeline.append(self.run_state.channel, kind, who, text, run=self.run_state.id)
        events.emit(
            self.redis, events.NOTE, self.run_state.id, step=self.step_id, who=who, text=text.to_json()
        )

    def aborted(self) -> bool:
        return bool(self.redis.hget(keys.run(self.run_state.id), "abort_requested_by"))

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
