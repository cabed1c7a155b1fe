"""A procedure's plan, rendered without running anything (`drbot plan`, `/dr plan`)."""

from __future__ import annotations

from dataclasses import dataclass

from procedures.clusters import Cluster
from procedures.i18n import t
from procedures.steps import Approval, Choice, Command, Procedure, Step, WaitUntil


@dataclass(frozen=True)
class PlanLine:
    number: int
    id: str
    title: str
    section: str
    kind: str
    where: str
    flags: tuple[str, ...]
    condition: str


def plan(procedure: Procedure, language: str = "en") -> list[PlanLine]:
    return [_line(i + 1, step, language) for i, step in enumerate(procedure.steps)]


def _line(number: int, step: Step, language: str) -> PlanLine:
    flags = []
    if step.destructive:
        flags.append(t("plan.flag.destructive", language))
    if not step.idempotent:
        flags.append(t("plan.flag.not_idempotent", language))
    where = ""
    if isinstance(step, Command):
        where = t(step.on.describe, language)
        where += t("plan.one_at_a_time" if step.serial else "plan.in_parallel", language)
    elif isinstance(step, WaitUntil):
        where = t("plan.wait", language, timeout=int(step.timeout), interval=int(step.interval))
    elif isinstance(step, Approval):
        where = t("plan.approval", language)
    elif isinstance(step, Choice):
        where = t("plan.choice", language)
    else:
        where = t("plan.call", language)
    return PlanLine(
        number=number,
        id=step.id,
        title=t(step.title, language),
        section=step.section,
        kind=step.kind,
        where=where,
        flags=tuple(flags),
        condition=t(step.when_text, language) if step.when_text else "",
    )


def render_text(procedure: Procedure, cluster: Cluster | None = None, language: str = "en") -> str:
    header = t(
        "plan.header",
        language,
        procedure=t(procedure.title, language),
        section=procedure.section,
        cluster=cluster.name if cluster else "-",
    )
    lines = [header]
    for line in plan(procedure, language):
        text = f"{line.number:>2}. {line.title} [{line.id}] — {line.where} — §{line.section}"
        if line.flags:
            text += f" — {', '.join(line.flags)}"
        if line.condition:
            text += f" — {line.condition}"
        lines.append(text)
    if cluster:
        hosts = ", ".join(f"{h.name} ({h.address})" for h in cluster.hosts)
        lines.append(t("plan.hosts", language, hosts=hosts))
    return "\n".join(lines)
