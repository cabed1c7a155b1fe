"""The careful person at an unknown-outcome gate (a step that is not idempotent was interrupted).

drbot asks: re-run, skip or stop. bob answers as a careful SRE would: he waits until an interrupted
script no longer runs on the host, looks at what it left, skips the step if its effect is complete
and re-runs it otherwise. He never asks drbot: what he knows comes from the hosts, over SSH as an
operator would. Every decision is a signed click in the Slack simulator.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from chaos.figures import Figure
from drbot.drills.common import APPROVER, gate_message_ts, ssh
from drbot.stage import Stage, StageError
from procedures.clusters import Cluster, Host, load_clusters
from workers.gates import UNKNOWN_OUTCOME, load_gate
from workers.runs import WAITING, RunStore

log = logging.getLogger(__name__)

STILL_RUNNING_WAIT = 120.0
"""How long bob waits for an interrupted cluster-restore.sh to stop before he looks at its result."""
RESTORE_SCRIPT_DONE = "sudo sh -c " + shlex.quote(
    "cd /etc/kubernetes/manifests || exit; ok=yes; "
    "for f in kube-apiserver-pod.yaml kube-controller-manager-pod.yaml kube-scheduler-pod.yaml; do "
    "test -f $f || { echo missing $f; ok=no; }; done; "
    "grep -q 'snapshot restore' etcd-pod.yaml 2>/dev/null || "
    "{ echo etcd-pod.yaml: not the restore pod; ok=no; }; "
    "echo complete=$ok"
)
"""cluster-restore.sh's last actions: the restore pod in place, then the three control-plane pods back."""


@dataclass(frozen=True)
class Decision:
    run: str
    step: str
    attempt: int
    value: str
    why: str


@dataclass
class CarefulPerson:
    stage: Stage
    decisions: list[Decision] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def cluster(self) -> Cluster:
        clusters = load_clusters(self.stage.config)
        return clusters.get(clusters.names()[0])

    def figure(self, scenario: str) -> Figure:
        """How many unknown-outcome gates bob answered, with what he saw each time."""
        seen = [f"run {d.run} {d.step} attempt {d.attempt}: {d.value} ({d.why})" for d in self.decisions]
        return Figure(scenario, "unknown-outcome gates bob answered", len(self.decisions), None, seen)

    def __enter__(self) -> CarefulPerson:
        self._thread = threading.Thread(target=self._watch, name="careful person", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        answered: set[str] = set()
        while not self._stop.wait(0.3):
            try:
                for run in RunStore(self.stage.redis()).active():
                    if run.status != WAITING or not run.gate or run.gate in answered:
                        continue
                    gate = load_gate(self.stage.redis(), run.gate)
                    if gate is None or gate.kind != UNKNOWN_OUTCOME:
                        continue
                    self._decide(run.id, run.vars, gate.token, gate.step, gate.attempt)
                    answered.add(gate.token)
            except RedisError:
                continue  # Redis paused or restarting: look again in a moment
            except Exception as error:  # kept for the report; he looks again in a moment
                log.exception("the careful person could not decide yet")
                self.errors.append(f"{type(error).__name__}: {error}")

    def _decide(self, run_id: str, vars: dict, token: str, step: str, attempt: int) -> None:
        complete, why = self._effect_complete(step, vars)
        value = "skip" if complete else "rerun"
        ts = self.stage.wait_for(lambda: gate_message_ts(self.stage, token), 60, f"the {step} gate in Slack")
        status, _ = self.stage.slack.click(APPROVER, ts, f"gate:{value}", f"{token}|{value}")
        if status != 200:
            raise StageError(f"clicking {value} at the {step} gate answered HTTP {status}")
        log.info("bob chose %s at %s (attempt %d): %s", value, step, attempt, why)
        self.decisions.append(Decision(run_id, step, attempt, value, why))

    def _effect_complete(self, step: str, vars: dict) -> tuple[bool, str]:
        cluster = self.cluster
        recovery = cluster.host(vars["recovery_host"])
        others = [h for h in cluster.hosts if h.name != recovery.name]
        if step == "move-etcd-data":
            probe = "test -e /var/lib/etcd && echo present || echo absent"
            seen = {h.name: self._on(h, probe).strip() for h in others}
            if any(answer not in ("present", "absent") for answer in seen.values()):
                raise StageError(f"cannot tell whether /var/lib/etcd was moved: {seen}")
            left = [name for name, answer in seen.items() if answer == "present"]
            return not left, f"/var/lib/etcd still on {', '.join(left)}" if left else "moved aside everywhere"
        if step == "run-restore-script":
            self._until_stopped(recovery, "cluster-restore.sh")
            seen = self._on(recovery, RESTORE_SCRIPT_DONE).strip()
            complete = seen.endswith("complete=yes")
            shown = "restore pod and control-plane pods in place" if complete else seen.replace("\n", "; ")
            return complete, shown
        raise StageError(f"the careful person does not know how to look at the effect of {step}")

    def _on(self, host: Host, command: str) -> str:
        return ssh(self.stage, command, host)

    def _until_stopped(self, host: Host, script: str) -> None:
        """An interrupted attempt may still run on the host: judge its result only once it is over."""
        deadline = time.monotonic() + STILL_RUNNING_WAIT
        # The hosts share the machine's processes: only those in this host's mount namespace count, and
        # the [c] keeps pgrep from finding this very command line.
        pattern = f"[{script[0]}]{script[1:]}"
        probe = f"pgrep --ns $$ --nslist mnt -f '{pattern}' >/dev/null && echo busy"
        while "busy" in self._on(host, probe):
            if time.monotonic() > deadline:
                raise StageError(f"{script} still runs on {host.name} after {STILL_RUNNING_WAIT:.0f} s")
            time.sleep(1)
