"""API blips: the transient errors a real cluster's API gives while it is fragile.

From cluster-restore.sh until the forced redeployments finish, a real cluster runs on one
kube-apiserver, and every kube-apiserver revision that lands restarts one. Clients then get
HTTP 500 (etcd leader changes, request timeouts), 429 with Retry-After (priority and fairness
shedding load), connections reset in the middle of a request, and, while the instance that serves
them restarts, connection refused. A write may be carried out and only its answer lost, which is
why a client may not blindly send a create again.

`Blips` decides per request; the server asks it only for API requests (not /healthz or the
twin's /sim/v1 hooks). "Fragile" is what the caller says (`degraded`), or'ed with a kube-apiserver
revision rolling out, read from the stored KubeAPIServer `cluster`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ApiError
from .etcd import EtcdUnavailable
from .resources import find
from .store import ObjectStore

INTERNAL = "500"
THROTTLED = "429"
RESET = "reset"
KINDS = (INTERNAL, THROTTLED, RESET)
RETRY_AFTER = 1
"""Seconds a 429 asks the client to wait, in the Retry-After header and the Status details."""
ROLLOUT_CHECK = 0.5
"""How long a rollout answer is reused: requests must not each read etcd for it."""
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class BlipSettings:
    """`rate`: share of API requests answered with a transient error while the API is fragile.
    `restart`: seconds the API refuses connections when the kube-apiserver serving it restarts."""

    rate: float = 0.0
    restart: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"API blip rate {self.rate} must be between 0 and 1 (e.g. 0.1)")
        if self.restart < 0:
            raise ValueError(f"API restart time {self.restart} must be 0 or more seconds")


@dataclass(frozen=True)
class Blip:
    kind: str
    after: bool
    """The request is carried out and only its answer is lost (writes only; a 429 never is)."""


def internal_error() -> ApiError:
    return ApiError(500, "InternalError", "Internal error occurred: etcdserver: leader changed")


def throttled() -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": RETRY_AFTER},
    )


class RolloutWatch:
    """True while the kube-apiserver operator's NodeInstallerProgressing is True (a revision rolls)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._resource = find("operator.openshift.io", "v1", "kubeapiservers")
        self._checked = 0.0
        self._rolling = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked >= ROLLOUT_CHECK:
                self._rolling = self._read()
                self._checked = time.monotonic()
            return self._rolling

    def _read(self) -> bool:
        assert self._resource is not None
        try:
            obj = self.store.try_get(self._resource, None, "cluster")
        except EtcdUnavailable:
            return False  # the request fails with a 503 anyway
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        return any(
            c.get("type") == "NodeInstallerProgressing" and c.get("status") == "True" for c in conditions
        )


class Blips:
    def __init__(
        self,
        settings: BlipSettings,
        degraded: Callable[[], bool],
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.degraded = degraded
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def pick(self, method: str) -> Blip | None:
        """The blip this request gets, or None to serve it normally."""
        if self.settings.rate <= 0 or not self.degraded():
            return None
        with self._lock:
            if self._rng.random() >= self.settings.rate:
                return None
            kind = self._rng.choice(KINDS)
            after = method in MUTATING and kind != THROTTLED and self._rng.random() < 0.5
        return Blip(kind, after)
