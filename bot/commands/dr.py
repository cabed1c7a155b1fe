"""`/dr`: every subcommand, answered within Slack's 3 s.

The listener runs before the HTTP response (process_before_response), so it only parses, checks,
touches Redis and queues work; anything slow happens in a worker or in the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncApp

from bot.access import may_approve, may_operate, visible
from bot.deps import Deps
from bot.parse import BUILTIN, Parsed, UsageError, parse, specs
from bot.render import escape, plan_blocks, runs_list, timeline_text
from procedures import params
from procedures.clusters import LANGUAGES, ConfigError
from procedures.i18n import Msg, msg, t
from workers import keys
from workers.redact import redact, redact_value
from workers.runs import ClusterBusy, Run
from workers.timeline import Entry, Timeline

log = logging.getLogger(__name__)

TIMELINE_INLINE = 40
"""Entries shown in Slack; longer timelines are uploaded as a Markdown file."""

Reply = dict[str, Any]


def register(app: AsyncApp, deps: Deps) -> None:
    async def dr(ack: Callable[..., Awaitable[None]], command: dict[str, Any]) -> None:
        # The answer goes straight back in the HTTP response, not through the outbox: redact it here.
        await ack(**redact_value(answer(deps, command)))

    app.command("/dr")(dr)


@dataclass(frozen=True)
class Caller:
    """Who typed the command, and where."""

    user: str
    channel: str
    channel_name: str
    language: str


def answer(deps: Deps, command: dict[str, Any]) -> Reply:
    """The reply to one `/dr` command (ephemeral unless said otherwise)."""
    channel, user = command.get("channel_id", ""), command.get("user_id", "")
    language = "en"
    try:
        language = deps.language(channel)
        parsed = parse(command.get("text", ""), specs({n: p.parameters for n, p in deps.procedures.items()}))
        handler = HANDLERS.get(parsed.command, _start)
        return handler(deps, parsed, Caller(user, channel, command.get("channel_name", ""), language))
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


def _help(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    known = specs({n: p.parameters for n, p in deps.procedures.items()})
    language = caller.language
    lines = [f"• `{spec.usage}` — {t(f'help.{name}', language)}" for name, spec in BUILTIN.items()]
    lines += [f"• `{known[name].usage}` — {t(p.title, language)}" for name, p in deps.procedures.items()]
    usages = "\n".join(lines)
    procedures = ", ".join(f"`{name}`" for name in deps.procedures)
    mine = visible(deps, caller.user, [deps.clusters.get(name) for name in deps.clusters.names()])
    clusters = ", ".join(f"`{cluster.name}`" for cluster in mine) or "-"
    return ephemeral(t("help.text", language, usages=usages, procedures=procedures, clusters=clusters))


def _plan(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    name = parsed.args["procedure"]
    procedure = deps.procedures.get(name)
    if procedure is None:
        raise UsageError(_unknown_procedure(deps, name), BUILTIN["plan"].usage)
    language = caller.language
    cluster_name = parsed.args.get("cluster", "")
    if cluster_name:
        cluster = deps.clusters.get(cluster_name)
        if not may_operate(deps, caller.user, cluster):
            return ephemeral(t("access.hidden", language, cluster=cluster.name, procedure=name))
        language = deps.language(caller.channel, cluster)
    text, blocks = plan_blocks(procedure, cluster_name, language)
    return ephemeral(text, blocks)


def _unknown_procedure(deps: Deps, name: str) -> Msg:
    return msg("usage.unknown_procedure", name=name, procedures=", ".join(deps.procedures))


def _start(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    """Start the procedure named by the subcommand on the cluster named by its argument, if the caller
    may, from this channel, with these arguments. A refused start takes no lock and writes nothing."""
    procedure = deps.procedures[parsed.command]
    cluster = deps.clusters.get(parsed.args["cluster"])
    language = deps.language(caller.channel, cluster)
    if not may_operate(deps, caller.user, cluster):
        return ephemeral(t("access.not_operator", language, cluster=cluster.name))
    if not cluster.allows_channel(caller.channel, caller.channel_name):
        allowed = ", ".join(_channel_mention(entry, language) for entry in cluster.channels) or "-"
        return ephemeral(t("access.wrong_channel", language, cluster=cluster.name, channels=allowed))
    wrong = params.problems(procedure.checks, parsed.options, cluster)
    if wrong:
        problems = "\n".join(f"• {t(problem, language)}" for problem in wrong)
        usage = specs({procedure.name: procedure.parameters})[procedure.name].usage
        return ephemeral(t("params.refused", language, problems=problems, usage=usage))
    deps.control.timeline.append(caller.channel, "command", caller.user, f"/dr {_command_text(parsed)}")
    try:
        run = deps.control.start(
            procedure.name, cluster.name, caller.channel, caller.user, parsed.options, language
        )
    except ClusterBusy as busy:
        return ephemeral(t("start.busy", language, cluster=cluster.name, run=busy.run_id))
    return ephemeral(t("start.started", language, run=run.id, procedure=procedure.name, cluster=cluster.name))


def _channel_mention(entry: str, language: str) -> str:
    return t("access.channel_prefix", language, prefix=entry) if entry.endswith("*") else f"<#{entry}>"


def _command_text(parsed: Parsed) -> str:
    words = [parsed.command, *parsed.args.values(), *(f"{k}={v}" for k, v in parsed.options.items())]
    return " ".join(words)


def _status(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    """Runs of the clusters the caller may see: a cluster's recent runs, or every run in progress."""
    name = parsed.args.get("cluster")
    if name:
        cluster = deps.clusters.get(name)
        if not may_operate(deps, caller.user, cluster):
            return ephemeral(t("access.hidden_status", caller.language, cluster=cluster.name))
        runs = deps.control.runs.recent(cluster.name, limit=5)
    else:
        seen = {c.name for c in visible(deps, caller.user, list(deps.clusters.by_name.values()))}
        runs = [run for run in deps.control.runs.active() if run.cluster in seen]
    return ephemeral(runs_list(runs, deps.procedures, caller.language))


def _abort(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    language = caller.language
    run = _find_run(deps, parsed.args["target"])
    if run is None:
        return ephemeral(t("abort.nothing", language, target=parsed.args["target"]))
    cluster = deps.clusters.get(run.cluster)
    if caller.user != run.requester and not may_approve(deps, caller.user, cluster):
        return ephemeral(t("abort.not_allowed", language, run=run.id))
    if run.finished:
        return ephemeral(
            t("abort.finished", language, run=run.id, status=t(f"status.{run.status}", language))
        )
    answer = deps.control.abort(run, caller.user)
    if answer == "finished":
        run = deps.control.runs.load(run.id) or run
        return ephemeral(
            t("abort.finished", language, run=run.id, status=t(f"status.{run.status}", language))
        )
    return ephemeral(t(f"abort.{answer}", language, run=run.id))


def _retry(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    return ephemeral(retry_run(deps, parsed.args["run"], caller.user, caller.language))


def retry_run(deps: Deps, run_id: str, user: str, language: str) -> str:
    """Retry a failed run from its failed step (the command and the status message's button)."""
    run = deps.control.runs.load(run_id)
    if run is None:
        return t("retry.unknown", language, run=run_id)
    cluster = deps.clusters.get(run.cluster)
    if user != run.requester and not may_approve(deps, user, cluster):
        return t("retry.not_allowed", language, run=run.id)
    outcome = deps.control.retry(run, user)
    owner = deps.control.runs.owner_of(run.cluster) or "?"
    return t(f"retry.{outcome}", language, run=run.id, cluster=run.cluster, owner=owner)


def _unlock(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    """Release a lock stranded by a finished or vanished run (approvers only; a live run keeps it)."""
    cluster = deps.clusters.get(parsed.args["cluster"])
    if not may_approve(deps, caller.user, cluster, fresh=True):
        return ephemeral(t("unlock.not_allowed", caller.language, cluster=cluster.name))
    answer, owner = deps.control.unlock(cluster.name, caller.user, caller.channel)
    return ephemeral(t(f"unlock.{answer}", caller.language, cluster=cluster.name, run=owner))


def _find_run(deps: Deps, target: str) -> Run | None:
    runs = deps.control.runs
    if target in deps.clusters.by_name:
        owner = runs.owner_of(target)
        return runs.load(owner) if owner else None
    return runs.load(target)


def _timeline(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    """The channel's timeline, without the runs of clusters the caller may not see."""
    language = caller.language
    timeline = Timeline(deps.redis)
    entries = _visible_entries(deps, caller.user, timeline.entries(caller.channel))
    if len(entries) > TIMELINE_INLINE:
        deps.outbox.upload(
            caller.channel,
            f"timeline-{caller.channel}.md",
            timeline.export_markdown(caller.channel, language, entries),
            title=t("timeline.file_title", language),
        )
        return ephemeral(t("timeline.uploaded", language, count=len(entries)))
    return ephemeral(timeline_text(entries, language))


def _visible_entries(deps: Deps, user: str, entries: list[Entry]) -> list[Entry]:
    runs = deps.control.runs
    seen: dict[str, bool] = {}
    for entry in entries:
        if entry.run and entry.run not in seen:
            run = runs.load(entry.run)
            cluster = deps.clusters.by_name.get(run.cluster) if run else None
            seen[entry.run] = cluster is not None and may_operate(deps, user, cluster)
    return [entry for entry in entries if not entry.run or seen[entry.run]]


def _note(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    text = redact(parsed.args["text"])
    deps.control.note(caller.channel, caller.user, text)
    return {
        "response_type": "in_channel",
        "text": t("note.added", caller.language, user=caller.user, text=escape(text)),
    }


def _language(deps: Deps, parsed: Parsed, caller: Caller) -> Reply:
    chosen = parsed.args["language"]
    if chosen not in LANGUAGES:
        raise UsageError(_bad_language(chosen), BUILTIN["language"].usage)
    deps.redis.set(keys.channel_language(caller.channel), chosen)
    return ephemeral(t("language.set", chosen, name=chosen))


def _bad_language(chosen: str) -> Msg:
    return msg("usage.bad_language", language=chosen, languages=", ".join(LANGUAGES))


HANDLERS: dict[str, Callable[[Deps, Parsed, Caller], Reply]] = {
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
