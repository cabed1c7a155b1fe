"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request, invalid

# Lists that strategic merge patch merges element by element, keyed by this field, in the types served.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "imagePullSecrets": "name",
    "tolerations": "key",
    "nodeStatuses": "nodeName",
}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, list) and isinstance(target, list) and field in MERGE_KEYS:
        return _merge_list(target, patch, MERGE_KEYS[field])
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            # Directives ($patch, $retainKeys, $setElementOrder/...) only order or constrain the merge.
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, key)
    return result


def _merge_list(target: list, patch: list, key: str) -> list:
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            return copy.deepcopy(patch)
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"JSON patch path {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise invalid(f"JSON patch path {path!r}: no element {part!r}") from None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise invalid(f"JSON patch path {path!r}: missing {part!r}")
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent, last = _parent(doc, parts, path)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError):
        raise invalid(f"JSON patch path {path!r} does not exist") from None


def _remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, _pointer(path), path)
    try:
        return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)
    except (KeyError, IndexError, ValueError):
        raise invalid(f"JSON patch remove: path {path!r} does not exist") from None


def _add(doc: Any, path: str, value: Any, replace: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif replace:
            parent[int(last)] = value
        else:
            parent.insert(int(last), value)
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise invalid(f"JSON patch replace: path {path!r} does not exist")
        parent[last] = value
    else:
        raise invalid(f"JSON patch path {path!r}: parent is not an object or list")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request('a JSON patch must be a list of operations like [{"op": "add", ...}]')
    doc = copy.deepcopy(target)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind in ("add", "replace"):
            doc = _add(doc, path, copy.deepcopy(op.get("value")), kind == "replace")
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            value = _get(doc, op["from"])
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, copy.deepcopy(value), False)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise invalid(f"JSON patch test failed at {path!r}")
        else:
            raise bad_request(f"unknown JSON patch op {kind!r}: use add, remove, replace, move, copy or test")
    return doc


CONTENT_TYPES = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


def apply_patch(content_type: str, target: dict, patch: Any) -> dict:
    func = CONTENT_TYPES.get(content_type.split(";")[0].strip())
    if func is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"unsupported patch type {content_type!r}; use one of {', '.join(CONTENT_TYPES)}",
        )
    result = func(target, patch)
    if not isinstance(result, dict):
        raise invalid("the patched object is not a JSON object")
    return result
