"""Label and field selectors (the subset kubectl and the procedures use)."""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import bad_request

Predicate = Callable[[dict], bool]

_SET_RE = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
FIELD_PATHS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "status.phase": ("status", "phase"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.signerName": ("spec", "signerName"),
    "involvedObject.name": ("involvedObject", "name"),
    "type": ("type",),
}


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside an `in (a,b)` set."""
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    match = _SET_RE.match(term)
    if match:
        key, op, raw = match.groups()
        values = {value.strip() for value in raw.split(",") if value.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (part.strip() for part in term.split(op, 1))
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9_./-]+", term):
        return lambda labels: term in labels
    raise bad_request(
        f"unable to parse requirement {term!r} in labelSelector; use key=value, key!=value, "
        "key in (a,b), key notin (a,b), key or !key"
    )


def label_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda obj: True
    tests = [_label_term(term) for term in _split_terms(selector)]

    def matches(obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(test(labels) for test in tests)

    return matches


def _field_value(obj: dict, path: tuple[str, ...]) -> str:
    value: object = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda obj: True
    tests: list[Predicate] = []
    for term in _split_terms(selector):
        for op in ("!=", "==", "="):
            if op in term:
                name, value = (part.strip() for part in term.split(op, 1))
                break
        else:
            raise bad_request(f"invalid field selector term {term!r}: use field=value or field!=value")
        path = FIELD_PATHS.get(name)
        if path is None:
            raise bad_request(
                f'field label not supported: "{name}"; supported: {", ".join(sorted(FIELD_PATHS))}'
            )
        negate = op == "!="
        tests.append(
            lambda obj, path=path, value=value, negate=negate: (_field_value(obj, path) == value) != negate
        )
    return lambda obj: all(test(obj) for test in tests)
