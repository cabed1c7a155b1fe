"""procedures.kube's retry of transient API errors, on plain data: which errors are retried, how long
it waits (backoff, Retry-After), that it stops at the step's bound, and what the step then sees."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from procedures import kube
from procedures.clusters import Cluster
from procedures.i18n import msg
from procedures.steps import StepFailed

CLUSTER = Cluster(name="prod-east", hosts=())


class Clock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def api_error(status: int, headers: dict[str, str] | None = None, body: dict | None = None) -> ApiException:
    error = ApiException(status=status, reason="reason")
    error.headers = headers
    error.body = json.dumps(body) if body is not None else None
    return error


def failing(*errors: Exception, result: str = "ok") -> Callable[[], str]:
    """An API call that fails with `errors`, one per attempt, then returns `result`."""
    queue = list(errors)

    def attempt(**_client_options: object) -> str:
        if queue:
            raise queue.pop(0)
        return result

    return attempt


def run(attempt: Callable[[], str], clock: Clock, bound: float = 60.0) -> str:
    return kube.with_retries(attempt, clock.now + bound, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_growing_backoff(status: int) -> None:
    clock = Clock()
    assert run(failing(*[api_error(status)] * 6), clock) == "ok"
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_429_waits_as_long_as_the_server_asks() -> None:
    clock = Clock()
    by_header = api_error(429, headers={"Retry-After": "3"})
    by_status = api_error(429, body={"kind": "Status", "details": {"retryAfterSeconds": 2}})
    silent = api_error(429)
    assert run(failing(by_header, by_status, silent), clock) == "ok"
    assert clock.slept == [3.0, 2.0, 2.0], "without Retry-After: the backoff (third failure)"


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        urllib3.exceptions.MaxRetryError(
            None,  # type: ignore[arg-type]
            "/api/v1/nodes",
            urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
        ),
        urllib3.exceptions.ReadTimeoutError(None, "/api/v1/nodes", "read timed out"),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["reset", "refused", "read-timeout", "os-refused"],
)
def test_connection_failures_and_timeouts_are_retried(error: Exception) -> None:
    clock = Clock()
    assert run(failing(error), clock) == "ok"
    assert clock.slept == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_client_errors_are_never_retried(status: int) -> None:
    clock = Clock()
    with pytest.raises(ApiException) as raised:
        run(failing(api_error(status)), clock)
    assert raised.value.status == status
    assert clock.slept == []


def test_an_untrusted_certificate_is_not_retried() -> None:
    clock = Clock()
    untrusted = urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        "/api",
        urllib3.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
    )
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        run(failing(untrusted), clock)
    assert clock.slept == []


def test_retries_stop_at_the_bound_with_the_last_error() -> None:
    clock = Clock()
    errors = [api_error(503)] * 20
    with pytest.raises(ApiException) as raised:
        run(failing(*errors), clock, bound=10.0)
    assert raised.value.status == 503
    assert clock.slept == [0.5, 1.0, 2.0, 4.0], "the next wait (8 s) would end past the 10 s bound"


def test_a_retry_after_past_the_bound_is_not_waited_for() -> None:
    clock = Clock()
    with pytest.raises(ApiException):
        run(failing(api_error(429, headers={"Retry-After": "30"})), clock, bound=10.0)
    assert clock.slept == []


def test_call_retries_within_the_steps_bound_then_says_the_api_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(kube.time, "monotonic", clock)
    monkeypatch.setattr(kube.time, "sleep", clock.sleep)
    with kube.deadline(20.0), pytest.raises(StepFailed) as failed:
        kube.call(CLUSTER, failing(*[api_error(500)] * 50))
    assert failed.value.summary == msg("kube.unavailable", cluster="prod-east", status=500)
    assert sum(clock.slept) <= 20.0 and len(clock.slept) == 5


def test_call_does_not_retry_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(kube.time, "sleep", clock.sleep)
    with pytest.raises(StepFailed) as failed:
        kube.call(CLUSTER, failing(api_error(403, body={"message": "forbidden"})))
    assert failed.value.summary.key == "kube.api_error" and kube.status_of(failed.value) == 403
    assert clock.slept == []


def test_an_inner_bound_never_extends_the_steps() -> None:
    with kube.deadline(5.0):
        outer = kube._bound.get()
        with kube.deadline(500.0):
            inner = kube._bound.get()
    assert outer is not None and inner is not None and inner.until == outer.until
    assert kube._bound.get() is None
    assert outer.until <= time.monotonic() + 5.0


def test_a_create_whose_object_exists_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube.time, "sleep", Clock().sleep)
    assert kube.create_once(CLUSTER, failing()) is True
    assert kube.create_once(CLUSTER, failing(api_error(409))) is False, "AlreadyExists: made before"
    with pytest.raises(StepFailed):
        kube.create_once(CLUSTER, failing(api_error(422)))


def test_a_delete_of_something_gone_is_done() -> None:
    assert kube.call_if_present(CLUSTER, failing(api_error(404))) is None


def test_a_wait_counts_an_api_that_does_not_answer_as_not_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube.time, "sleep", lambda _seconds: None)

    def down(_ctx: object) -> tuple[bool, object]:
        raise StepFailed(msg("kube.unreachable", cluster="prod-east", error="Connection refused"))

    def refused(_ctx: object) -> tuple[bool, object]:
        raise StepFailed(msg("kube.api_error", cluster="prod-east", status=403, reason="Forbidden", body=""))

    done, shown = kube.tolerant(1.0, down)(None)  # type: ignore[arg-type]
    assert not done and shown.key == "kube.api_waiting"
    with pytest.raises(StepFailed):
        kube.tolerant(1.0, refused)(None)  # type: ignore[arg-type]
