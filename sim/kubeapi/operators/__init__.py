"""The simulated operators: a reconcile loop in the API server process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..certs import CertPair
from ..errors import ApiError
from ..etcd import EtcdUnavailable
from ..store import ObjectStore
from .csr import CsrController
from .machines import MachineController
from .network import NetworkController
from .staticpods import Installer, StaticPodController
from .workloads import WorkloadController

log = logging.getLogger("sim.kubeapi.operators")


@dataclass(frozen=True)
class Timing:
    tick: float
    revision_step: float  # per node: installer pod start + static pod restart
    csr_auto_approve: float
    machine_step: float  # per Machine phase
    pod_start: float

    @classmethod
    def fast(cls) -> Timing:
        return cls(tick=0.2, revision_step=0.6, csr_auto_approve=1.0, machine_step=0.6, pod_start=0.3)

    @classmethod
    def realistic(cls) -> Timing:
        # Roughly what a 4.14 AWS cluster shows: ~2 min per node rollout, minutes to boot an instance.
        return cls(tick=2.0, revision_step=120.0, csr_auto_approve=20.0, machine_step=90.0, pod_start=15.0)


class Operators:
    def __init__(
        self,
        store: ObjectStore,
        timing: Timing,
        *,
        installer_provisioned: bool,
        replace_deleted_masters: bool = False,
        is_up: Callable[[], bool],
        ca: Callable[[], CertPair | None],
        installer: Installer | None = None,
        host_managed: Callable[[str], bool] = lambda _node: False,
        adopt_host: Callable[[dict], tuple[str, str] | None] | None = None,
    ) -> None:
        self.timing = timing
        self.is_up = is_up
        self.csr = CsrController(
            store,
            ca,
            auto_approve_serving=installer_provisioned,
            approve_delay=timing.csr_auto_approve,
            host_managed=host_managed,
        )
        self.machines = MachineController(
            store, timing.machine_step, replace_deleted_masters=replace_deleted_masters, adopt_host=adopt_host
        )
        self._extra: list[Any] = []
        self._controllers = (
            StaticPodController(store, timing.revision_step, installer),
            NetworkController(store),
            self.csr,
            self.machines,
            WorkloadController(store, timing.pod_start),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="kubeapi-operators", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def add(self, controller: object) -> None:
        """Run one more controller (anything with reconcile()) in this loop, e.g. the twin node agent."""
        self._extra.append(controller)

    def reconcile_once(self) -> None:
        for controller in (*self._controllers, *self._extra):
            try:
                controller.reconcile()
            except (EtcdUnavailable, ApiError) as exc:
                # Controllers are level-based: the next tick retries from what etcd holds.
                log.debug("%s: %s", type(controller).__name__, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.timing.tick):
            # Operators run as pods on the control plane: with the API down they do nothing.
            if not self.is_up():
                continue
            try:
                self.reconcile_once()
            except Exception:
                # A bug in one pass must not stop the cluster's controllers for the rest of the run.
                log.exception("reconcile pass failed")

    def file_forged_csr(self, kind: str) -> str:
        return self.csr.file_forged(kind)

    def file_bootstrap_csr(self, node_name: str) -> str:
        return self.csr.file_bootstrap(node_name)

    def set_node_ready(self, node_name: str, ready: bool, message: str = "") -> None:
        self.csr.set_ready(node_name, ready, message)
