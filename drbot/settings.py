"""Settings from the environment (the contract in shared/design/ARCHITECTURE.md), checked up front."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from procedures.clusters import Clusters, load_clusters

SLACK_API_DEFAULT = "https://slack.com/api/"


def without_password(url: str) -> str:
    """The URL as it may be shown: its password (redis://:PASSWORD@host) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it and says how to set it."""


@dataclass(frozen=True)
class Settings:
    redis_url: str
    config_path: str
    slack_bot_token: str
    slack_signing_secret: str
    slack_app_token: str
    slack_api_url: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            config_path=os.environ.get("DRBOT_CONFIG", ""),
            slack_bot_token=os.environ.get("SLACK_BOT_TOKEN", ""),
            slack_signing_secret=os.environ.get("SLACK_SIGNING_SECRET", ""),
            slack_app_token=os.environ.get("SLACK_APP_TOKEN", ""),
            slack_api_url=os.environ.get("SLACK_API_URL", SLACK_API_DEFAULT),
        )

    def redis(self, answering_slack: bool = False) -> Redis:
        """A Redis client. The bot's (`answering_slack`) fails within about a second, so a Redis outage
        gets a clear answer inside Slack's 3 s instead of a timeout; workers retry longer. Every
        client has a socket timeout: a half-open connection must not block a worker forever."""
        if answering_slack:
            client = Redis.from_url(
                self.redis_url,
                socket_connect_timeout=0.5,
                socket_timeout=1.0,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=30,
            )
        else:
            client = Redis.from_url(
                self.redis_url,
                socket_connect_timeout=3,
                socket_timeout=5,
                socket_keepalive=True,
                health_check_interval=30,
            )
        try:
            client.ping()
        except RedisError as error:
            raise SettingsError(
                f"cannot reach Redis at REDIS_URL={without_password(self.redis_url)}: {error}; "
                "start Redis or point REDIS_URL at it"
            ) from None
        return client

    def clusters(self) -> Clusters:
        if not self.config_path:
            raise SettingsError(
                "DRBOT_CONFIG is not set; point it at the clusters file "
                "(see README, 'Connecting real clusters')"
            )
        return load_clusters(self.config_path)

    def require_slack(self, socket_mode: bool) -> None:
        missing = [
            name
            for name, value in (
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
            )
            if not value
        ]
        if socket_mode and not self.slack_app_token:
            missing.append("SLACK_APP_TOKEN")
        if missing:
            raise SettingsError(
                f"{', '.join(missing)} not set; copy them from your Slack app's settings "
                "(see README, 'Connecting a Slack workspace')"
            )
        if not self.slack_bot_token.startswith("xoxb-"):
            raise SettingsError("SLACK_BOT_TOKEN must be a bot token (it starts with xoxb-)")
        if socket_mode and not self.slack_app_token.startswith("xapp-"):
            raise SettingsError("SLACK_APP_TOKEN must be an app-level token (it starts with xapp-)")
