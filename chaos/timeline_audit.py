"""Is anything missing from an incident's timeline? It must hold what the journal says happened (each
run's start, each step's start and end, each decision, each run's end) and what people did in Slack
(each note typed, each run whose status message says it ended).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from redis import Redis

from drbot.stage import Stage
from procedures.i18n import Msg, t
from workers.journal import DECISION, FINISHED, STARTED, Journal
from workers.runs import RunStore
from workers.timeline import Timeline

Key = tuple[str, str, str]
"""(kind, run, detail): detail is the step for step starts and decisions, the text for notes."""


def recorded(redis: Redis, channel: str) -> Counter[Key]:
    found: Counter[Key] = Counter()
    for entry in Timeline(redis).entries(channel):
        if isinstance(entry.text, str):
            found[(entry.kind, entry.run, entry.text)] += 1
        elif entry.kind in ("step_finished", "step_failed"):
            found[("step_ended", entry.run, "")] += 1
        else:
            found[(entry.kind, entry.run, _step(entry.text))] += 1
    return found


def _step(text: Msg) -> str:
    return str(text.args.get("step", ""))


def from_journal(redis: Redis, run_ids: Iterable[str]) -> Counter[Key]:
    expected: Counter[Key] = Counter()
    runs = RunStore(redis)
    for run_id in run_ids:
        expected[("run_started", run_id, "")] += 1
        for entry in Journal(redis, run_id).entries():
            if entry["event"] == STARTED:
                expected[("step_started", run_id, entry["step"])] += 1
            elif entry["event"] == FINISHED and "duration" in entry:  # a gate's FINISHED has none
                expected[("step_ended", run_id, "")] += 1
            elif entry["event"] == DECISION:
                kind = "rejection" if entry["value"] == "reject" else "approval"
                expected[(kind, run_id, entry["step"])] += 1
        run = runs.load(run_id)
        if run is not None and run.finished:
            expected[("run_finished", run_id, "")] += 1
    return expected


def from_slack(stage: Stage, channel: str, run_ids: Iterable[str]) -> Counter[Key]:
    """Notes people typed (and drbot accepted), and runs whose status message in Slack says they ended."""
    expected: Counter[Key] = Counter()
    for call in stage.slack.calls("slash_command"):
        text = str(call.args.get("text", ""))
        if call.args.get("channel_id") == channel and text.startswith("note "):
            expected[("note", "", text.removeprefix("note ").strip())] += 1
    ended = [t(f"status.{status}") for status in ("succeeded", "failed", "aborted")]
    for run_id in run_ids:
        for message in stage.slack.messages(channel):
            if f"(run {run_id})" in message.text and any(word in message.text for word in ended):
                expected[("run_finished", run_id, "")] += 1
                break
    return expected


def missing(have: Counter[Key], wanted: Counter[Key]) -> list[str]:
    """What the timeline lacks. (Merge the journal's and Slack's expectations with `|`: an event both
    expect is one event.)"""
    return [
        f"{kind} {run or '-'} {detail or ''}: {count - have[(kind, run, detail)]} missing".rstrip()
        for (kind, run, detail), count in sorted(wanted.items())
        if have[(kind, run, detail)] < count
    ]
