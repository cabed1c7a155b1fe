"""Slack's message and Block Kit limits, checked the way Slack reports them.

Errors use Slack's wording: `invalid_blocks` with messages such as
"must be less than 3001 characters [json-pointer:/blocks/0/text/text]".
"""

from __future__ import annotations

from typing import Any

MAX_TEXT = 40_000
"""Above this Slack truncates `text` and warns `message_truncated`."""
MAX_UPDATE_TEXT_BYTES = 4_000
"""chat.update answers `msg_too_long` past about 4,000 UTF-8 bytes of text."""
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_BUTTON_URL = 3_000
MAX_ID = 255
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_MARKDOWN_TEXT = 12_000

KNOWN_BLOCKS = {
    "section",
    "header",
    "divider",
    "actions",
    "context",
    "image",
    "rich_text",
    "markdown",
    "input",
}


def _too_long(limit: int, pointer: str) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _check_text_object(obj: Any, limit: int, pointer: str, errors: list[str]) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        errors.append(f"must provide a text object [json-pointer:{pointer}]")
        return
    if len(obj["text"]) > limit:
        errors.append(_too_long(limit, f"{pointer}/text"))


def _check_id(value: Any, pointer: str, errors: list[str]) -> None:
    if isinstance(value, str) and len(value) > MAX_ID:
        errors.append(_too_long(MAX_ID, pointer))


def _check_button(button: dict[str, Any], pointer: str, errors: list[str]) -> None:
    _check_text_object(button.get("text"), MAX_BUTTON_TEXT, f"{pointer}/text", errors)
    _check_id(button.get("action_id"), f"{pointer}/action_id", errors)
    value = button.get("value")
    if isinstance(value, str) and len(value) > MAX_BUTTON_VALUE:
        errors.append(_too_long(MAX_BUTTON_VALUE, f"{pointer}/value"))
    url = button.get("url")
    if isinstance(url, str) and len(url) > MAX_BUTTON_URL:
        errors.append(_too_long(MAX_BUTTON_URL, f"{pointer}/url"))


def _check_block(block: Any, pointer: str, errors: list[str]) -> None:
    if not isinstance(block, dict):
        errors.append(f"must be an object [json-pointer:{pointer}]")
        return
    kind = block.get("type")
    if kind not in KNOWN_BLOCKS:
        errors.append(f"unsupported type: {kind} [json-pointer:{pointer}/type]")
        return
    _check_id(block.get("block_id"), f"{pointer}/block_id", errors)
    if kind == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"must provide text or fields [json-pointer:{pointer}]")
        if "text" in block:
            _check_text_object(block["text"], MAX_SECTION_TEXT, f"{pointer}/text", errors)
        fields = block.get("fields") or []
        if len(fields) > MAX_SECTION_FIELDS:
            errors.append(
                f"must provide no more than {MAX_SECTION_FIELDS} items [json-pointer:{pointer}/fields]"
            )
        for i, item in enumerate(fields):
            _check_text_object(item, MAX_FIELD_TEXT, f"{pointer}/fields/{i}", errors)
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            _check_button(accessory, f"{pointer}/accessory", errors)
    elif kind == "header":
        _check_text_object(block.get("text"), MAX_HEADER_TEXT, f"{pointer}/text", errors)
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or len(text) > MAX_MARKDOWN_TEXT:
            errors.append(_too_long(MAX_MARKDOWN_TEXT, f"{pointer}/text"))
    elif kind in ("actions", "context"):
        elements = block.get("elements")
        limit = MAX_ACTIONS_ELEMENTS if kind == "actions" else MAX_CONTEXT_ELEMENTS
        if not isinstance(elements, list) or not elements:
            errors.append(f"must provide elements [json-pointer:{pointer}/elements]")
            return
        if len(elements) > limit:
            errors.append(f"must provide no more than {limit} items [json-pointer:{pointer}/elements]")
        for i, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "button":
                _check_button(element, f"{pointer}/elements/{i}", errors)


def block_errors(blocks: Any) -> list[str]:
    """Slack's `invalid_blocks` messages for a message's blocks; empty when Slack would accept them."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        _check_block(block, f"/blocks/{i}", errors)
    return errors


def truncate_text(text: str) -> tuple[str, list[str]]:
    """The text as Slack stores it, and the warnings it returns (`message_truncated` past 40,000 chars)."""
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT], ["message_truncated"]
    return text, []
