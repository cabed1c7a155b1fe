"""Figures: what a scenario measured, the value it must have (if any), and the evidence when it does not.

The table and the JSON are made from these only, so every number printed was measured in this run.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    scenario: str
    name: str
    value: int | float | str
    must: int | str | None = None
    """The value it must have; None for a figure that only informs."""
    evidence: list[str] = field(default_factory=list)
    """What a reader needs to find the problem when the figure is not what it must be."""

    @property
    def ok(self) -> bool | None:
        return None if self.must is None else self.value == self.must


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def table(figures: list[Figure]) -> str:
    rows = [("scenario", "figure", "value", "must be", "")]
    for figure in figures:
        mark = {True: "ok", False: "FAIL", None: ""}[figure.ok]
        must = "" if figure.must is None else str(figure.must)
        rows.append((figure.scenario, figure.name, _shown(figure.value), must, mark))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _shown(value: int | float | str) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def machine() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "load": {"1m": load1, "5m": load5, "15m": load15},
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_json(
    directory: Path, figures: list[Figure], started: dict[str, Any], durations: dict[str, float]
) -> Path:
    """chaos/results/chaos-<time>.json: the figures, the machine before and after, each scenario's time."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "machine_at_start": started,
        "machine_at_end": machine(),
        "durations_s": durations,
        "figures": [{**asdict(f), "ok": f.ok} for f in figures],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path
