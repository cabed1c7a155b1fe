"""Calling the Kubernetes API from a step: transient errors are retried within the step's bound, the
rest become StepFailed with a message an operator can act on.

From cluster-restore.sh until the forced redeployments finish, a real cluster runs on one
kube-apiserver that restarts whenever a revision lands on it: calls get 500, 502, 503, 504, 429
(with Retry-After), connection resets, refused connections and timeouts. `call` retries exactly
those, with exponential backoff (a 429 after the server's Retry-After), until the deadline of the
step it runs in (`bounded`, `tolerant`; DEFAULT_BOUND otherwise), and never another 4xx.

Retrying blindly is safe for reads, deletes by name (a 404 on the retry means done) and merge
patches to a fixed value (the same state again). It is not for a create or a write conditional on a
resourceVersion: the first attempt may have been carried out and only its answer lost, so the retry
gets 409. The steps that make such changes check the cluster before they act, and read a 409 as
"look again" (`create_once`, the CSR approvals).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

from procedures.clusters import Cluster
from procedures.i18n import Msg, msg
from procedures.steps import StepContext, StepFailed

T = TypeVar("T")
R = TypeVar("R")

REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts: a dead API must not hold a step for minutes."""
TRANSIENT = frozenset({429, 500, 502, 503, 504})
DEFAULT_BOUND = 15.0
"""Seconds a call retries when its step gave no bound: long enough for a blip, short enough that a
check which expects the API to be down (a preflight during quorum loss) still answers soon."""
FIRST_DELAY = 0.5
MAX_DELAY = 8.0
API_DOWN = ("kube.unavailable", "kube.unreachable")
"""The StepFailed keys that mean "the API did not answer in time", as opposed to "it said no"."""


@dataclass(frozen=True)
class Bound:
    until: float
    """time.monotonic() after which a transient error is no longer retried."""
    ctx: StepContext | None = None
    """The step, to show the retries and to stop when the run is aborted."""


_bound: ContextVar[Bound | None] = ContextVar("kube_bound", default=None)


@contextmanager
def deadline(seconds: float, ctx: StepContext | None = None) -> Iterator[None]:
    """API calls inside retry transient errors for at most `seconds` from now (never past an
    enclosing bound)."""
    until = time.monotonic() + seconds
    outer = _bound.get()
    if outer is not None:
        until = min(until, outer.until)
        ctx = ctx or outer.ctx
    token = _bound.set(Bound(until, ctx))
    try:
        yield
    finally:
        _bound.reset(token)


def bounded(seconds: float, step: Callable[[StepContext], R]) -> Callable[[StepContext], R]:
    """A step whose API calls wait out transient errors for at most `seconds` in all."""

    def wrapped(ctx: StepContext) -> R:
        with deadline(seconds, ctx):
            return step(ctx)

    return wrapped


def tolerant(
    seconds: float, condition: Callable[[StepContext], tuple[bool, Msg]]
) -> Callable[[StepContext], tuple[bool, Msg]]:
    """A WaitUntil condition whose calls retry for at most `seconds` per poll; an API that still does
    not answer then means "not yet" (the WaitUntil's own timeout bounds the wait), not failure."""

    def wrapped(ctx: StepContext) -> tuple[bool, Msg]:
        try:
            with deadline(seconds, ctx):
                return condition(ctx)
        except StepFailed as down:
            if down.summary.key not in API_DOWN:
                raise
            return False, msg("kube.api_waiting", reason=down.summary.to_json())

    return wrapped


def retry_delay(error: BaseException, failures: int) -> float | None:
    """Seconds to wait before trying again after `error`, the `failures`-th in a row (0 for the
    first); None when trying again cannot help."""
    if isinstance(error, ApiException):
        if error.status not in TRANSIENT:
            return None
        if error.status == 429:
            asked = retry_after(error)
            if asked is not None:
                return asked
    elif not isinstance(error, urllib3.exceptions.HTTPError | OSError) or _untrusted(error):
        return None
    return min(MAX_DELAY, FIRST_DELAY * 2**failures)


def retry_after(error: ApiException) -> float | None:
    """The server's Retry-After (header, else the Status' details.retryAfterSeconds), in seconds."""
    header = (error.headers or {}).get("Retry-After")
    if header is not None and str(header).strip().isdigit():
        return float(header)
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (ValueError, AttributeError):
        return None
    seconds = details.get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def _untrusted(error: BaseException) -> bool:
    """A server certificate the client does not trust will not be trusted on the next try either."""
    reason = getattr(error, "reason", error)
    return isinstance(reason, urllib3.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(reason)


def with_retries(
    attempt: Callable[[], T],
    until: float,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    waiting: Callable[[BaseException, float], None] = lambda _error, _delay: None,
) -> T:
    """attempt() until it returns or fails for good; a transient failure is retried after
    retry_delay() as long as that ends before `until`, then raised. `waiting` is told each retry.
    `clock` and `sleep` default to time.monotonic and time.sleep."""
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    failures = 0
    while True:
        try:
            return attempt()
        except Exception as error:
            delay = retry_delay(error, failures)
            if delay is None or clock() + delay > until:
                raise
            waiting(error, delay)
            failures += 1
            sleep(delay)


def call(cluster: Cluster, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call one kubernetes client method: transient errors retried within the step's bound, the
    rest turned into a readable StepFailed."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    bound = _bound.get() or Bound(time.monotonic() + DEFAULT_BOUND)

    def waiting(error: BaseException, delay: float) -> None:
        if bound.ctx is None:
            return
        if bound.ctx.aborted():
            raise StepFailed(msg("step.wait_aborted"))
        bound.ctx.progress(msg("kube.retrying", error=describe(error), seconds=round(delay, 1)))

    try:
        return with_retries(lambda: fn(*args, **kwargs), bound.until, waiting=waiting)
    except ApiException as error:
        if error.status in TRANSIENT:
            raise StepFailed(msg("kube.unavailable", cluster=cluster.name, status=error.status)) from None
        raise StepFailed(
            msg(
                "kube.api_error",
                cluster=cluster.name,
                status=error.status,
                reason=error.reason or "",
                body=(error.body or "")[:300],
            )
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise StepFailed(msg("kube.unreachable", cluster=cluster.name, error=_short(error))) from None


def call_if_present(cluster: Cluster, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Like call(), but None when the object or the resource type does not exist (HTTP 404): for a
    delete, already gone (maybe by an earlier attempt whose answer was lost) is done."""
    try:
        return call(cluster, fn, *args, **kwargs)
    except StepFailed as failure:
        if status_of(failure) == 404:
            return None
        raise


def create_once(cluster: Cluster, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Create an object under a name the caller chose; True if this call created it, False when it
    already exists (an earlier attempt whose answer was lost, or a run before this one)."""
    try:
        call(cluster, fn, *args, **kwargs)
    except StepFailed as failure:
        if status_of(failure) == 409:
            return False
        raise
    return True


def status_of(failure: StepFailed) -> int | None:
    """The HTTP status an API StepFailed carries (None when the API did not answer)."""
    status = failure.summary.args.get("status")
    return status if isinstance(status, int) else None


def describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason or ''}".strip()
    return _short(error)


def _short(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error)[:200]
