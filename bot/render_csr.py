"""Block Kit for the CSR panel: pending CSRs with approve, deny and details buttons.

Valid CSRs can be approved in bulk; a flagged CSR only with its own button, whose confirmation
dialog names the failed check. Buttons carry the panel token, the CSR's name and uid.
"""

from __future__ import annotations

from typing import Any

from bot.render import Blocks, button, clip, section
from procedures.csr_checks import age_seconds, offered_digest
from procedures.i18n import Msg, t

MAX_SHOWN = 15
"""Three blocks per CSR would overflow Slack's 50 blocks a message beyond this."""


def csr_panel(token: str, data: dict[str, Any], language: str) -> tuple[str, Blocks]:
    offered = [v for v in data["offered"] if v["pending"]]
    header = t(
        "csr.panel.header", language, platform=data["platform"], not_ready=", ".join(data["not_ready"]) or "-"
    )
    blocks: Blocks = [section(header)]
    valid = [v for v in offered if not v["problems"]]
    if valid:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button(
                        t("button.approve_all", language, count=len(valid)),
                        "csr:approve_all",
                        f"{token}|{offered_digest(data)}",
                        "primary",
                    ),
                ],
            }
        )
    for view in offered[:MAX_SHOWN]:
        blocks.extend(_csr_blocks(token, view, language))
    if len(offered) > MAX_SHOWN:
        blocks.append(section(t("csr.panel.more", language, count=len(offered) - MAX_SHOWN)))
    if not offered:
        blocks.append(section(t("csr.panel.none", language)))
    if data["watched"]:
        names = ", ".join(f"`{v['name']}` ({v['node']})" for v in data["watched"])
        blocks.append(section(t("csr.panel.watched", language, names=names)))
    return header, blocks


def _csr_blocks(token: str, view: dict[str, Any], language: str) -> Blocks:
    value = f"{token}|{view['name']}|{view['uid']}"
    problems = [t(Msg.from_json(p), language) for p in view["problems"]]
    args = {
        "name": view["name"],
        "wave": view["wave"],
        "node": view["node"] or "?",
        "requestor": view["requestor"],
        "age": age_seconds(view["created"]),
    }
    if problems:
        line = t("csr.panel.flagged", language, problems="; ".join(problems), **args)
        approve = button(t("button.approve", language), "csr:approve_flagged", value, "danger")
        approve["confirm"] = {
            "title": {"type": "plain_text", "text": clip(t("csr.confirm.title", language), 100)},
            "text": {
                "type": "plain_text",
                "text": clip(t("csr.confirm.text", language, name=view["name"], problem=problems[0]), 300),
            },
            "confirm": {"type": "plain_text", "text": clip(t("csr.confirm.yes", language), 30)},
            "deny": {"type": "plain_text", "text": clip(t("csr.confirm.no", language), 30)},
            "style": "danger",
        }
    else:
        line = t("csr.panel.valid", language, **args)
        approve = button(t("button.approve", language), "csr:approve", value, "primary")
    return [
        section(line),
        {
            "type": "actions",
            "elements": [
                approve,
                button(t("button.deny", language), "csr:deny", value),
                button(t("button.details", language), "csr:details", value),
            ],
        },
    ]
