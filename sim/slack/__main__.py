"""Run the Slack simulator on its own: `python -m sim.slack --port 8765 [--enforce-rate-limits]`.

Prints the Web API URL and tokens to give drbot (SLACK_API_URL, SLACK_BOT_TOKEN, SLACK_APP_TOKEN) and
serves until interrupted. Faults can then be injected with the HTTP control endpoint, e.g.
`curl -d '{"count": 3, "status": 429}' http://127.0.0.1:8765/_sim/faults`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from sim.slack.driver import SlackSim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.slack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: any free one)")
    parser.add_argument("--enforce-rate-limits", action="store_true", help="429 past ~1 post/s per channel")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SlackSim(port=args.port) as sim:
        if args.enforce_rate_limits:
            sim.enforce_rate_limits()
        print(f"SLACK_API_URL={sim.url}")
        print(f"SLACK_BOT_TOKEN={sim.bot_token}")
        print(f"SLACK_APP_TOKEN={sim.app_token}")
        print(f"SLACK_SIGNING_SECRET={sim.signing_secret}")
        print(f"control: {sim.control_url}faults | ratelimit | calls", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
