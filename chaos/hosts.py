"""What really ran on the twin's hosts, from each host's invocation log (sim/twin/invocations.py).

drbot's journal says what drbot meant to do; these logs say what the hosts did, so a step that ran on
two workers at once, or a script that ran more often than drbot started it, shows here even if the
journal looks right.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from drbot.stage import Stage
from sim.twin import invocations
from sim.twin.invocations import Invocation
from sim.twin.layout import INVOCATION_LOG, load_spec


@dataclass(frozen=True)
class Overlap:
    host: str
    first: Invocation
    second: Invocation

    def describe(self) -> str:
        def one(invocation: Invocation) -> str:
            end = f"{invocation.end:.3f}" if invocation.end is not None else "no end"
            return (
                f"{invocation.tool} {' '.join(invocation.args)} (pid {invocation.pid}, "
                f"from {invocation.connection}, {invocation.start:.3f}–{end})"
            )

        return f"{self.host}: {one(self.first)} and {one(self.second)} ran at the same time"


def logs(stage: Stage) -> dict[str, list[Invocation]]:
    """Every host's invocations, by host name, read from the host's own files on the machine."""
    spec = load_spec(stage.directory)
    return {host.name: invocations.read(str(spec.in_host(host, INVOCATION_LOG))) for host in spec.hosts}


def overlaps(stage: Stage) -> list[Overlap]:
    """Invocations from two SSH connections (two workers) that ran at the same time on one host."""
    now = time.time()
    return [
        Overlap(host, first, second)
        for host, invoked in logs(stage).items()
        for first, second in invocations.overlapping(invoked, until=now)
    ]


def runs_of(stage: Stage, tool: str) -> list[Invocation]:
    """Invocations of `tool` over SSH on any host (the twin's own processes are left out)."""
    return [i for invoked in logs(stage).values() for i in invoked if i.tool == tool and i.connection]
