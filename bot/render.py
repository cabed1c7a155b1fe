"""Block Kit for what drbot posts: the run's status message, step results, gates, plans and lists.

Everything is rendered from Redis state and catalog messages, in the reader's language; Slack's
limits (3,000 characters a section, 50 blocks a message) are respected here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from procedures.i18n import Msg, t
from procedures.plan import plan
from procedures.steps import Procedure
from workers.gates import APPROVAL, CHOICE, Gate
from workers.runs import ABORTED, FAILED, SUCCEEDED, WAITING, Run
from workers.timeline import Entry

SECTION_LIMIT = 3000
INLINE_OUTPUT = 2500
"""Step output longer than this goes into the thread as a file instead of a code block."""
BAR_WIDTH = 12

Blocks = list[dict[str, Any]]


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, 75)},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
    return "▰" * filled + "▱" * (BAR_WIDTH - filled) + f" {done}/{total}"


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def status_message(
    run: Run, procedure: Procedure, gate: Gate | None, language: str, now: float | None = None
) -> tuple[str, Blocks]:
    """The one status message per run, edited in place as the run moves."""
    title = t(procedure.title, language)
    headline = t(f"status.{run.status}", language)
    text = t("status.fallback", language, procedure=title, cluster=run.cluster, run=run.id, status=headline)
    steps = procedure.steps
    facts = t(
        "status.facts",
        language,
        cluster=run.cluster,
        requester=run.requester,
        run=run.id,
        elapsed=elapsed(run.elapsed(now if now is not None else time.time())),
    )
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f"{title} — {run.cluster}", 150)}},
        section(facts),
        context(f"{headline}   {progress_bar(min(run.step_index, len(steps)), len(steps))}"),
    ]
    if not run.finished and run.step_index < len(steps):
        current = steps[run.step_index]
        line = t("status.current", language, step=t(current.title, language), section=current.section)
        if run.progress:
            line += "\n" + shown(Msg.from_json(run.progress), language)
        blocks.append(section(line))
    if run.status == WAITING and gate is not None:
        blocks.extend(gate_blocks(gate, language))
    if run.finished:
        blocks.append(section(_result(run, procedure, language)))
    if run.status == FAILED and not run.result.get("rejected_by"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button(t("button.retry", language), "run:retry", run.id, "primary"),
                ],
            }
        )
    return text, blocks


def _result(run: Run, procedure: Procedure, language: str) -> str:
    if run.status == SUCCEEDED:
        report = procedure.report(run.vars) if procedure.report else None
        return t("status.result.succeeded", language) + (f"\n{t(report, language)}" if report else "")
    if run.status == ABORTED:
        return t("status.result.aborted", language, user=run.result.get("by", run.abort_requested_by))
    if run.status == FAILED and run.result.get("rejected_by"):
        return t(
            "status.result.rejected", language, user=run.result["rejected_by"], step=run.result.get("step")
        )
    summary = run.result.get("summary")
    reason = shown(Msg.from_json(summary), language) if summary else ""
    return t("status.result.failed", language, step=run.result.get("step", "?"), reason=reason)


def gate_blocks(gate: Gate, language: str) -> Blocks:
    prompt = shown(Msg.from_json(gate.prompt), language) if gate.prompt else ""
    if gate.kind == CHOICE:
        buttons = [
            button(option, f"gate:choose:{i}", f"{gate.token}|{option}")
            for i, option in enumerate(gate.options[:24])
        ]
        buttons.append(button(t("button.reject", language), "gate:reject", f"{gate.token}|reject", "danger"))
        return [section(t("gate.choice", language, prompt=prompt)), {"type": "actions", "elements": buttons}]
    if gate.kind == APPROVAL:
        who = t("gate.not_requester", language) if gate.destructive else ""
        return [
            section(t("gate.approval", language, prompt=prompt, who=who)),
            {
                "type": "actions",
                "elements": [
                    button(t("button.approve", language), "gate:approve", f"{gate.token}|approve", "primary"),
                    button(t("button.reject", language), "gate:reject", f"{gate.token}|reject", "danger"),
                ],
            },
        ]
    return [
        section(t("gate.unknown_outcome", language, step=gate.step, attempt=gate.attempt)),
        {
            "type": "actions",
            "elements": [
                button(t("button.rerun", language), "gate:rerun", f"{gate.token}|rerun", "danger"),
                button(t("button.skip", language), "gate:skip", f"{gate.token}|skip"),
                button(t("button.reject", language), "gate:reject", f"{gate.token}|reject"),
            ],
        },
    ]


def step_finished(
    title: str, ok: bool, summary: Msg, duration: float, details: str, language: str
) -> tuple[str, Blocks, str | None]:
    """A thread reply for a finished step: (text, blocks, output too long to inline, if any)."""
    mark = "✅" if ok else "❌"
    text = f"{mark} *{title}* — {shown(summary, language)} ({duration:.1f} s)"
    blocks = [section(text)]
    if details and len(details) <= INLINE_OUTPUT:
        blocks.append(section(f"```{escape(details)}```"))
        return text, blocks, None
    return text, blocks, details or None


def plan_blocks(procedure: Procedure, cluster_name: str, language: str) -> tuple[str, Blocks]:
    title = t(procedure.title, language)
    text = t("plan.header", language, procedure=title, section=procedure.section, cluster=cluster_name or "-")
    lines = []
    for line in plan(procedure, language):
        flags = f" — _{', '.join(line.flags)}_" if line.flags else ""
        condition = f" — {line.condition}" if line.condition else ""
        lines.append(
            f"{line.number}. *{line.title}* `{line.id}` — {line.where} — §{line.section}{flags}{condition}"
        )
    blocks: Blocks = [section(text)]
    chunk = ""
    for line in lines:
        if len(chunk) + len(line) + 1 > SECTION_LIMIT:
            blocks.append(section(chunk))
            chunk = ""
        chunk += line + "\n"
    if chunk:
        blocks.append(section(chunk))
    return text, blocks[:50]


def runs_list(runs: Sequence[Run], procedures: Mapping[str, Procedure], language: str) -> str:
    if not runs:
        return t("status.none", language)
    lines = []
    for run in runs:
        procedure = procedures.get(run.procedure)
        total = len(procedure.steps) if procedure else 0
        lines.append(
            t(
                "status.line",
                language,
                run=run.id,
                procedure=run.procedure,
                cluster=run.cluster,
                status=t(f"status.{run.status}", language),
                done=min(run.step_index, total),
                total=total,
                requester=run.requester,
                elapsed=elapsed(run.elapsed()),
            )
        )
    return "\n".join(lines)


def escape(text: str) -> str:
    """Text a person typed or a host printed, made inert for Slack: `<!channel>`, `<!here>`,
    `<!subteam^…>` or `<@U…>` in it is shown, and pings nobody (Slack's own escaping of &, < and >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shown(message: Msg, language: str) -> str:
    """A message from the engine, rendered for Slack: the values in it (file names, errors, output read
    from hosts and the API) are escaped, while the catalog's own markup (`<@{user}>`) is kept."""
    return t(Msg(message.key, {name: _inert(value) for name, value in message.args.items()}), language)


def _inert(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict) and set(value) == {"key", "args"}:
        return {"key": value["key"], "args": {k: _inert(v) for k, v in (value["args"] or {}).items()}}
    return value


def timeline_text(entries: Sequence[Entry], language: str) -> str:
    lines = []
    for entry in entries:
        when = time.strftime("%H:%M:%S", time.gmtime(entry.at))
        who = f"<@{entry.who}>" if entry.who.startswith(("U", "W")) else entry.who
        text = entry.render(language)
        lines.append(f"`{when}` {who} {escape(text) if isinstance(entry.text, str) else text}")
    return "\n".join(lines) or t("timeline.empty", language)
