"""The Slack simulator: a local, stateful Slack Web API plus a driver that acts as Slack users."""
