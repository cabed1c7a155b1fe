"""The functions RQ runs. The worker process configures the engine once at start-up."""

from __future__ import annotations

from workers.engine import Engine

_engine: Engine | None = None


def configure(engine: Engine) -> None:
    global _engine
    _engine = engine


def advance(run_id: str) -> None:
    if _engine is None:
        raise RuntimeError("workers.jobs.advance ran outside `drbot worker` (no engine configured)")
    _engine.advance(run_id)
