"""The step vocabulary the procedures are written in.

Every step has a stable id (the journal and approvals refer to it), a title from the catalog, the
runbook section it implements, and two flags: idempotent (safe to run again when a worker died in
the middle of it) and destructive (needs an approval from someone other than the requester before
it runs). The engine in workers/ executes steps through a `StepContext`; procedures never touch
SSH, Redis or Slack directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from procedures.clusters import Cluster, Host
from procedures.i18n import Msg, msg


@dataclass(frozen=True)
class CommandResult:
    """What one command did on one host. `exit_code` is None when it could not run at all, or when
    drbot lost track of it (`outcome_unknown`: it was sent, and may have run in part or whole)."""

    host: str
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    error: str = ""
    outcome_unknown: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Outcome:
    """How a step ended. `vars` are merged into the run's variables for later steps."""

    ok: bool
    summary: Msg
    details: str = ""
    vars: Mapping[str, Any] = field(default_factory=dict)


class StepFailed(Exception):
    """Raised by step code for an expected failure; the message is shown to the operator."""

    def __init__(self, summary: Msg, details: str = "") -> None:
        super().__init__(summary.key)
        self.summary = summary
        self.details = details


class StepContext(Protocol):
    """What a step may use while it runs (implemented by the engine)."""

    cluster: Cluster
    params: Mapping[str, str]
    vars: Mapping[str, Any]

    def run(
        self,
        hosts: Sequence[Host],
        command: str,
        *,
        sudo: bool = False,
        timeout: float = 300.0,
        serial: bool = False,
    ) -> list[CommandResult]: ...

    def copy(
        self,
        source: Host,
        path: str,
        targets: Sequence[Host],
        *,
        destination: str | None = None,
        timeout: float = 1800.0,
    ) -> list[CommandResult]:
        """Copy a (root-owned) file from one host to others through the bot, checked by sha256."""
        ...

    def kube(self) -> Any:
        """A kubernetes.client.ApiClient for the cluster; raises StepFailed when the API is unreachable."""
        ...

    def progress(self, text: Msg) -> None:
        """Show what the step is doing or waiting for (status message, throttled)."""
        ...

    def aborted(self) -> bool: ...

    def publish(self, panel: str, data: Mapping[str, Any]) -> str:
        """Show a panel of choices in Slack (e.g. pending CSRs with buttons), replacing the step's last
        one (nothing is sent when the data has not changed); returns the panel's token, which the
        buttons carry."""
        ...

    def take_requests(self) -> list[dict[str, Any]]:
        """Clicks on the step's panel that the bot has checked and queued, oldest first."""
        ...

    def tell(self, who: str, kind: str, text: Msg) -> None:
        """Record what happened (who approved what) in the timeline and the run's thread."""
        ...


class Targets:
    """Which control-plane hosts a command runs on, resolved against the run's variables."""

    def __init__(self, describe: Msg, pick: Callable[[Cluster, Mapping[str, Any]], list[Host]]) -> None:
        self.describe = describe
        self._pick = pick

    def resolve(self, cluster: Cluster, vars: Mapping[str, Any]) -> list[Host]:
        return self._pick(cluster, vars)


def _all(cluster: Cluster, vars: Mapping[str, Any]) -> list[Host]:
    return list(cluster.hosts)


def host_in(var: str) -> Targets:
    """The one host whose name a Choice step stored in `var` (e.g. the recovery host)."""

    def pick(cluster: Cluster, vars: Mapping[str, Any]) -> list[Host]:
        return [cluster.host(vars[var])]

    return Targets(msg("targets.host_in", var=var), pick)


def hosts_except(var: str) -> Targets:
    """Every control-plane host but the one stored in `var` (e.g. the non-recovery hosts)."""

    def pick(cluster: Cluster, vars: Mapping[str, Any]) -> list[Host]:
        return [h for h in cluster.hosts if h.name != vars[var]]

    return Targets(msg("targets.hosts_except", var=var), pick)


ALL_HOSTS = Targets(msg("targets.all"), _all)

When = Callable[[StepContext], Msg | None]
"""Returns why the step does not apply (it is then skipped), or None to run it."""


@dataclass(frozen=True, kw_only=True)
class Step:
    id: str
    title: Msg
    section: str
    idempotent: bool = True
    destructive: bool = False
    when: When | None = None
    when_text: Msg | None = None

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class Command(Step):
    """Run a shell command on control-plane hosts, in parallel or one host at a time.

    `check` turns the per-host results into an Outcome; without it the step succeeds when every
    host exits 0.
    """

    command: str | Callable[[StepContext], str]
    on: Targets = ALL_HOSTS
    serial: bool = False
    sudo: bool = False
    timeout: float = 300.0
    check: Callable[[StepContext, list[CommandResult]], Outcome] | None = None

    def render_command(self, ctx: StepContext) -> str:
        return self.command(ctx) if callable(self.command) else self.command


@dataclass(frozen=True, kw_only=True)
class Call(Step):
    """Call the Kubernetes API (or any other check) from the worker."""

    call: Callable[[StepContext], Outcome]


@dataclass(frozen=True, kw_only=True)
class WaitUntil(Step):
    """Poll a condition until it holds: the runbook's "wait a few minutes and check again".

    `condition` returns (done, what is shown while waiting).
    """

    condition: Callable[[StepContext], tuple[bool, Msg]]
    interval: float = 5.0
    timeout: float = 600.0


@dataclass(frozen=True, kw_only=True)
class Approval(Step):
    """Pause the run until an approver clicks approve (or reject). No worker is held meanwhile.

    With `destructive=True` (the default here) the requester may not approve it.
    """

    prompt: Callable[[StepContext], Msg]
    destructive: bool = True
    idempotent: bool = True


@dataclass(frozen=True, kw_only=True)
class Choice(Step):
    """Ask a human to pick one option; the pick is stored in the run variable `var`.

    A single option is taken without asking.
    """

    var: str
    options: Callable[[StepContext], list[str]]
    prompt: Msg


@dataclass(frozen=True)
class Procedure:
    name: str
    title: Msg
    section: str
    steps: tuple[Step, ...]
    parameters: Mapping[str, Msg] = field(default_factory=dict)
    """Optional `key=value` arguments the command accepts, with their help text."""
    checks: Mapping[str, Callable[[str, Cluster], Msg | None]] = field(default_factory=dict)
    """How each argument is checked before a run starts (procedures/params.py)."""
    report: Callable[[Mapping[str, Any]], Msg] | None = None
    """What a successful run reports in its status message, from the run's variables."""

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        return [s.id for s in self.steps].index(step_id)


def all_ok(ctx: StepContext, results: list[CommandResult], summary: Msg) -> Outcome:
    """The default check: success when every host exits 0, otherwise name the hosts that did not."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return Outcome(True, summary)
    names = ", ".join(f"{r.host} ({r.error or f'exit {r.exit_code}'})" for r in failed)
    return Outcome(False, msg("step.failed_on_hosts", hosts=names), details=_details(failed))


def _details(results: Sequence[CommandResult]) -> str:
    return "\n".join(
        f"[{r.host}] exit={r.exit_code} {r.error}\n{r.stdout}{r.stderr}".rstrip() for r in results
    )
