"""Every Redis key drbot uses, in one place. All keys share the `drbot:` prefix."""

from __future__ import annotations

PREFIX = "drbot:"
QUEUE = "drbot"
"""The RQ queue the workers listen on."""


def run(run_id: str) -> str:
    """Hash: the run's state (procedure, cluster, status, current step, vars, requester, …)."""
    return f"{PREFIX}run:{run_id}"


def journal(run_id: str) -> str:
    """List: the step journal, one JSON entry per event, appended around every side effect."""
    return f"{PREFIX}run:{run_id}:journal"


def lease(run_id: str) -> str:
    """String with a TTL: held by the worker advancing the run; its expiry means the worker died."""
    return f"{PREFIX}run:{run_id}:lease"


def active_runs() -> str:
    """Set: ids of runs that are not finished (running, waiting, paused)."""
    return f"{PREFIX}runs:active"


def cluster_lock(cluster: str) -> str:
    """String: the id of the one run that owns the cluster. No TTL: it outlives crashes on purpose."""
    return f"{PREFIX}lock:cluster:{cluster}"


def gate(token: str) -> str:
    """Hash: an open approval or choice (run id, step id, kind); buttons carry only the token."""
    return f"{PREFIX}gate:{token}"


def timeline(incident: str) -> str:
    """Stream: the shared, append-only incident timeline."""
    return f"{PREFIX}timeline:{incident}"


def events() -> str:
    """Stream: what the workers report for Slack (consumed by the bot's notifier)."""
    return f"{PREFIX}events"


def outbox(channel: str) -> str:
    """List: Slack Web API calls waiting to be sent to one channel, in order."""
    return f"{PREFIX}outbox:{channel}"


def outbox_channels() -> str:
    """Set: channels whose outbox may hold calls."""
    return f"{PREFIX}outbox:channels"


def outbox_sender(channel: str) -> str:
    """String with a TTL: held by the one process sending a channel's outbox, so order is kept."""
    return f"{PREFIX}outbox:{channel}:sender"


def notifier_lease() -> str:
    """String with a TTL: the token (host:pid:…) of the one bot replica whose notifier turns events into
    outbox entries; another replica takes over when it lapses."""
    return f"{PREFIX}notifier:lease"


def notifier_cursor() -> str:
    """String: the id of the last event of events() turned into outbox entries, advanced in the same
    transaction as those entries."""
    return f"{PREFIX}notifier:cursor"


def slot(name: str) -> str:
    """String: the Slack message ts stored under a name (e.g. a run's status message)."""
    return f"{PREFIX}slot:{name}"


def usergroup_cache(group: str) -> str:
    """String with a TTL: cached members of a Slack user group (usergroups.users.list is Tier 2)."""
    return f"{PREFIX}usergroup:{group}"


def cluster_runs(cluster: str) -> str:
    """List: a cluster's run ids, newest first (the restore procedures find the latest backup here)."""
    return f"{PREFIX}cluster:{cluster}:runs"


def wake(run_id: str) -> str:
    """String with a TTL: an advance job for the run is queued; stops the reaper from queueing another."""
    return f"{PREFIX}run:{run_id}:wake"


def channel_language(channel: str) -> str:
    """String: the language a channel asked for with `/dr language` (overrides the cluster's)."""
    return f"{PREFIX}channel:{channel}:language"


def outbox_dead_letters() -> str:
    """List: outbox entries Slack refused for good or that failed past the retry budget (JSON)."""
    return f"{PREFIX}outbox-dead"


def panel(token: str) -> str:
    """Hash: a step's panel as last published (run, step, version, data); buttons carry the token."""
    return f"{PREFIX}panel:{token}"


def requests(run_id: str) -> str:
    """List: checked clicks on a run's panels, waiting for the step that polls them."""
    return f"{PREFIX}run:{run_id}:requests"


def seen_request(signature: str) -> str:
    """String with a TTL: a signed Slack request already received (replays are refused)."""
    return f"{PREFIX}seen:{signature}"
