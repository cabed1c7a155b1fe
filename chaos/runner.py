"""`make chaos`: the scenarios one after another, then one table of figures, also written as JSON under
chaos/results/ with the machine's core count and load.

The exit status is 1 when any figure is not what it must be, or a scenario could not complete.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from chaos import aof, kills, pause, races, slack_outage, starts
from chaos.figures import Figure, machine, table, write_json

RESULTS = Path(__file__).resolve().parent / "results"
Scenario = Callable[[], list[Figure]]
SCENARIOS: dict[str, Scenario] = {
    "kills": lambda: kills.run(kills=20),
    "pause": pause.run,
    "aof": aof.run,
    "slack": slack_outage.run,
    "races": races.run,
    "starts": starts.run,
}
"""The full suite, in the order it runs (the cheap ones later, so a broken twin shows early)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only these")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # `timeout`, `kill`: tear the scene down as on Ctrl-C
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    started_on = machine()
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    began = time.monotonic()
    for name in args.only or list(SCENARIOS):
        logging.info("scenario %s", name)
        start = time.monotonic()
        try:
            figures += SCENARIOS[name]()
        except Exception:
            figures.append(Figure(name, "scenario completed", "no", "yes", [traceback.format_exc()]))
        durations[name] = round(time.monotonic() - start, 1)
    durations["total"] = round(time.monotonic() - began, 1)
    print(table(figures))
    for figure in figures:
        if figure.ok is False and figure.evidence:
            print(f"\n{figure.scenario} / {figure.name}:\n  " + "\n  ".join(figure.evidence))
    path = write_json(RESULTS, figures, started_on, durations)
    cores, load = started_on["cores"], started_on["load"]
    print(f"\n{cores} cores, load {load['1m']:.2f} at start; {durations['total']:.0f} s in all; {path}")
    return 1 if any(figure.ok is False for figure in figures) else 0


def _interrupted(number: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {number}")
