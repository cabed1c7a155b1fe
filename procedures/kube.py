"""Calling the Kubernetes API from a step: errors become StepFailed with a message an operator can act on.

During a restore the API is expected to be down; the step then says so plainly instead of showing a
urllib3 traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

from procedures.clusters import Cluster
from procedures.i18n import msg
from procedures.steps import StepFailed

T = TypeVar("T")

REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts: a dead API must not hold a step for minutes."""


def call(cluster: Cluster, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call one kubernetes client method, turning transport and HTTP errors into readable StepFailed."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return fn(*args, **kwargs)
    except ApiException as error:
        if error.status in (502, 503, 504):
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
    """Like call(), but None when the object or the resource type does not exist (HTTP 404)."""
    try:
        return call(cluster, fn, *args, **kwargs)
    except StepFailed as failure:
        if failure.summary.args.get("status") == 404:
            return None
        raise


def _short(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error)[:200]
