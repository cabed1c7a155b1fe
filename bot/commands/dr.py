"""`/dr`: every subcommand, answered within Slack's 3 s.

The listener runs before the HTTP response (process_before_response), so it only parses, checks,
touches Redis and queues work; anything slow happens in a worker or in the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp

from bot.deps import Deps
from bot.parse import BUILTIN, Parsed, UsageError, parse, specs
from bot.render import plan_blocks, runs_list, timeline_text
from procedures.clusters import LANGUAGES, ConfigError
from procedures.i18n import Msg, msg, t
from workers import keys
from workers.redact import redact
from workers.runs import ClusterBusy, Run
from workers.timeline import Timeline

log = logging.getLogger(__name__)

TIMELINE_INLINE = 40
"""Entries shown in Slack; longer timelines are uploaded as a Markdown file."""

Reply = dict[str, Any]


def register(app: AsyncApp, deps: Deps) -> None:
    async def dr(ack: Callable[..., Awaitable[None]], command: dict[str, Any]) -> None:
        await ack(**answer(deps, command))

    app.command("/dr")(dr)


def answer(deps: Deps, command: dict[str, Any]) -> Reply:
    """The reply to one `/dr` command (ephemeral unless said otherwise)."""
    channel, user = command.get("channel_id", ""), command.get("user_id", "")
    language = "en"
    try:
        language = deps.language(channel)
        parsed = parse(command.get("text", ""), specs({n: p.parameters for n, p in deps.procedures.items()}))
        handler = HANDLERS.get(parsed.command, _start)
        return handler(deps, parsed, channel, user, language)
    except UsageError as error:
        return ephemeral(t("usage.error", language, problem=t(error.problem, language), usage=error.usage))
    except ConfigError as error:
        return ephemeral(t("usage.config", language, error=str(error)))
    except RedisError as error:
        log.error("Redis unavailable: %s", error)
        return ephemeral(t("error.redis", language))
    except Exception:  # a bug must still get an answer in Slack, not a timeout
        log.exception("/dr %s failed", command.get("text", ""))
        return ephemeral(t("error.internal", language))


def ephemeral(text: str, blocks: list[dict[str, Any]] | None = None) -> Reply:
    reply: Reply = {"response_type": "ephemeral", "text": text}
    if blocks:
        reply["blocks"] = blocks
    return reply


def _help(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    known = specs({n: p.parameters for n, p in deps.procedures.items()})
    lines = [f"• `{spec.usage}` — {t(f'help.{name}', language)}" for name, spec in BUILTIN.items()]
    lines += [f"• `{known[name].usage}` — {t(p.title, language)}" for name, p in deps.procedures.items()]
    usages = "\n".join(lines)
    procedures = ", ".join(f"`{name}`" for name in deps.procedures)
    clusters = ", ".join(f"`{name}`" for name in deps.clusters.names()) or "-"
    return ephemeral(t("help.text", language, usages=usages, procedures=procedures, clusters=clusters))


def _plan(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    name = parsed.args["procedure"]
    procedure = deps.procedures.get(name)
    if procedure is None:
        raise UsageError(_unknown_procedure(deps, name), BUILTIN["plan"].usage)
    cluster_name = parsed.args.get("cluster", "")
    if cluster_name:
        cluster = deps.clusters.get(cluster_name)
        language = deps.language(channel, cluster)
    text, blocks = plan_blocks(procedure, cluster_name, language)
    return ephemeral(text, blocks)


def _unknown_procedure(deps: Deps, name: str) -> Msg:
    return msg("usage.unknown_procedure", name=name, procedures=", ".join(deps.procedures))


def _start(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    """Start the procedure named by the subcommand on the cluster named by its argument."""
    procedure = parsed.command
    cluster = deps.clusters.get(parsed.args["cluster"])
    language = deps.language(channel, cluster)
    deps.control.timeline.append(channel, "command", user, f"/dr {_command_text(parsed)}")
    try:
        run = deps.control.start(procedure, cluster.name, channel, user, parsed.options, language)
    except ClusterBusy as busy:
        return ephemeral(t("start.busy", language, cluster=cluster.name, run=busy.run_id))
    return ephemeral(t("start.started", language, run=run.id, procedure=procedure, cluster=cluster.name))


def _command_text(parsed: Parsed) -> str:
    words = [parsed.command, *parsed.args.values(), *(f"{k}={v}" for k, v in parsed.options.items())]
    return " ".join(words)


def _status(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    name = parsed.args.get("cluster")
    if name:
        cluster = deps.clusters.get(name)
        runs = deps.control.runs.recent(cluster.name, limit=5)
    else:
        runs = deps.control.runs.active()
    return ephemeral(runs_list(runs, deps.procedures, language))


def _abort(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    run = _find_run(deps, parsed.args["target"])
    if run is None:
        return ephemeral(t("abort.nothing", language, target=parsed.args["target"]))
    cluster = deps.clusters.get(run.cluster)
    if user != run.requester and not deps.is_approver(user, cluster):
        return ephemeral(t("abort.not_allowed", language, run=run.id))
    if run.finished:
        return ephemeral(
            t("abort.finished", language, run=run.id, status=t(f"status.{run.status}", language))
        )
    answer = deps.control.abort(run, user)
    if answer == "finished":
        run = deps.control.runs.load(run.id) or run
        return ephemeral(
            t("abort.finished", language, run=run.id, status=t(f"status.{run.status}", language))
        )
    return ephemeral(t(f"abort.{answer}", language, run=run.id))


def _retry(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    return ephemeral(retry_run(deps, parsed.args["run"], user, language))


def retry_run(deps: Deps, run_id: str, user: str, language: str) -> str:
    """Retry a failed run from its failed step (the command and the status message's button)."""
    run = deps.control.runs.load(run_id)
    if run is None:
        return t("retry.unknown", language, run=run_id)
    cluster = deps.clusters.get(run.cluster)
    if user != run.requester and not deps.is_approver(user, cluster):
        return t("retry.not_allowed", language, run=run.id)
    outcome = deps.control.retry(run, user)
    owner = deps.control.runs.owner_of(run.cluster) or "?"
    return t(f"retry.{outcome}", language, run=run.id, cluster=run.cluster, owner=owner)


def _unlock(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    """Release a lock stranded by a finished or vanished run (approvers only; a live run keeps it)."""
    cluster = deps.clusters.get(parsed.args["cluster"])
    if not deps.is_approver(user, cluster):
        return ephemeral(t("unlock.not_allowed", language, cluster=cluster.name))
    answer, owner = deps.control.unlock(cluster.name, user, channel)
    return ephemeral(t(f"unlock.{answer}", language, cluster=cluster.name, run=owner))


def _find_run(deps: Deps, target: str) -> Run | None:
    runs = deps.control.runs
    if target in deps.clusters.by_name:
        owner = runs.owner_of(target)
        return runs.load(owner) if owner else None
    return runs.load(target)


def _timeline(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    timeline = Timeline(deps.redis)
    entries = timeline.entries(channel)
    if len(entries) > TIMELINE_INLINE:
        deps.outbox.upload(
            channel,
            f"timeline-{channel}.md",
            timeline.export_markdown(channel, language),
            title=t("timeline.file_title", language),
        )
        return ephemeral(t("timeline.uploaded", language, count=len(entries)))
    return ephemeral(timeline_text(entries, language))


def _note(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    text = redact(parsed.args["text"])
    deps.control.note(channel, user, text)
    return {"response_type": "in_channel", "text": t("note.added", language, user=user, text=text)}


def _language(deps: Deps, parsed: Parsed, channel: str, user: str, language: str) -> Reply:
    chosen = parsed.args["language"]
    if chosen not in LANGUAGES:
        raise UsageError(_bad_language(chosen), BUILTIN["language"].usage)
    deps.redis.set(keys.channel_language(channel), chosen)
    return ephemeral(t("language.set", chosen, name=chosen))


def _bad_language(chosen: str) -> Msg:
    return msg("usage.bad_language", language=chosen, languages=", ".join(LANGUAGES))


HANDLERS: dict[str, Callable[[Deps, Parsed, str, str, str], Reply]] = {
    "help": _help,
    "plan": _plan,
    "status": _status,
    "abort": _abort,
    "retry": _retry,
    "unlock": _unlock,
    "timeline": _timeline,
    "note": _note,
    "language": _language,
}
