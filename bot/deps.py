"""What the listeners share: Redis, the clusters file, the run controls, the outbox, and who may approve."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.outbox import Outbox
from procedures.clusters import LANGUAGES, Cluster, Clusters
from procedures.i18n import t
from procedures.steps import Procedure
from workers import keys
from workers.control import Control

log = logging.getLogger(__name__)

USERGROUP_TTL = 300
"""usergroups.users.list is Tier 2 (about 20 calls a minute): cache members for five minutes."""


@dataclass
class Deps:
    redis: Redis
    clusters: Clusters
    procedures: Mapping[str, Procedure]
    outbox: Outbox
    web: WebClient
    """For reads whose answer is needed right away (user group members); sends go through the outbox."""

    @property
    def control(self) -> Control:
        return Control(self.redis, self.procedures)

    def language(self, channel: str, cluster: Cluster | None = None) -> str:
        chosen = self.redis.get(keys.channel_language(channel))
        if chosen and chosen.decode() in LANGUAGES:
            return chosen.decode()
        return cluster.language if cluster else "en"

    def tell_without_redis(self, body: dict[str, Any]) -> None:
        """Answer a click when Redis is down. The outbox lives in Redis, so this one answer goes
        straight to the interaction's response_url (at most once per click, well within its limits)."""
        log.error("Redis unavailable during a click by %s", body.get("user", {}).get("id"))
        url = body.get("response_url")
        if url:
            WebhookClient(url).send(text=t("error.redis"), response_type="ephemeral", replace_original=False)

    def group_members(self, group: str, fresh: bool = False) -> list[str]:
        """Members of a Slack user group, cached for five minutes unless `fresh` (decisions that matter)."""
        cached = None if fresh else self.redis.get(keys.usergroup_cache(group))
        if cached is not None:
            return list(json.loads(cached))
        try:
            members = list(self.web.usergroups_users_list(usergroup=group).get("users", []))
        except SlackApiError as error:
            log.error(
                "cannot read user group %s (%s); only the approvers listed in the clusters file may approve",
                group,
                error.response.get("error"),
            )
            return []
        self.redis.set(keys.usergroup_cache(group), json.dumps(members), ex=USERGROUP_TTL)
        return members
