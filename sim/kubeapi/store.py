"""Kubernetes object semantics on top of etcd: metadata defaults, resourceVersion, conflicts, finalizers."""

from __future__ import annotations

import copy
import datetime
import json
import random
import uuid
from collections.abc import Callable

from . import errors
from .etcd import EtcdClient, KeyValue
from .resources import RESOURCES, ResourceType, find

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_MAX_CAS_RETRIES = 20


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(length))


def decode(kv: KeyValue) -> dict:
    obj = json.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: dict) -> bytes:
    stored = copy.deepcopy(obj)
    # The revision is etcd's, not the object's: storing it would make snapshots lie after a restore.
    stored.get("metadata", {}).pop("resourceVersion", None)
    stored.get("metadata", {}).pop("selfLink", None)
    return json.dumps(stored, separators=(",", ":")).encode()


class ObjectStore:
    def __init__(self, etcd: EtcdClient) -> None:
        self.etcd = etcd

    def _read(self, res: ResourceType, namespace: str | None, name: str) -> tuple[dict, int]:
        kv = self.etcd.get(res.key(namespace, name))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        return decode(kv), kv.mod_revision

    def get(self, res: ResourceType, namespace: str | None, name: str) -> dict:
        return self._read(res, namespace, name)[0]

    def try_get(self, res: ResourceType, namespace: str | None, name: str) -> dict | None:
        kv = self.etcd.get(res.key(namespace, name))
        return decode(kv) if kv else None

    def list(self, res: ResourceType, namespace: str | None = None) -> tuple[list[dict], int]:
        kvs, revision = self.etcd.range_prefix(res.prefix(namespace))
        return [decode(kv) for kv in kvs], revision

    def _check_namespace(self, res: ResourceType, namespace: str | None) -> None:
        if not res.namespaced:
            return
        if not namespace:
            raise errors.bad_request(f"{res.plural} are namespaced: give a namespace")
        ns_res = find("", "v1", "namespaces")
        assert ns_res is not None
        ns = self.try_get(ns_res, None, namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403,
                "Forbidden",
                f"{res.plural} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    def create(self, res: ResourceType, namespace: str | None, body: dict) -> dict:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(f"{res.kind}: metadata.name or metadata.generateName is required")
            meta["name"] = meta["generateName"] + random_suffix()
        name = meta["name"]
        if res.namespaced:
            namespace = namespace or meta.get("namespace")
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    f"the namespace of the object ({meta['namespace']}) does not match the namespace "
                    f"in the URL ({namespace})"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = None
        self._check_namespace(res, namespace)
        obj["apiVersion"] = res.group_version
        obj["kind"] = res.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        if res.has_status:
            meta["generation"] = 1
        _defaults(res, obj)
        revision = self.etcd.put_if(res.key(namespace, name), encode(obj), 0)
        if revision is None:
            raise errors.already_exists(res.plural, name, res.group)
        meta["resourceVersion"] = str(revision)
        return obj

    def update(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        body: dict,
        subresource: str | None = None,
        *,
        dry_run: bool = False,
    ) -> dict:
        """PUT semantics: the body's resourceVersion, when given, must match the stored one."""
        wanted = body.get("metadata", {}).get("resourceVersion")
        if body.get("metadata", {}).get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({body['metadata']['name']}) does not match the name "
                f"in the URL ({name})"
            )

        def change(current: dict) -> dict:
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            return merge_for_subresource(res, current, body, subresource)

        return self.modify(res, namespace, name, change, retry=not wanted, dry_run=dry_run)

    def modify(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[dict], dict],
        *,
        retry: bool = True,
        dry_run: bool = False,
    ) -> dict:
        """Read, apply `change`, compare-and-swap; retried on a concurrent write unless `retry` is off.
        With `dry_run` the result is computed and validated but not written (?dryRun=All)."""
        for _ in range(_MAX_CAS_RETRIES):
            current, mod_revision = self._read(res, namespace, name)
            updated = change(copy.deepcopy(current))
            _protect_identity(current, updated, res)
            if res.has_status and updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            meta = updated["metadata"]
            if dry_run:
                return updated
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                if self.etcd.delete_if(res.key(namespace, name), mod_revision):
                    return updated
            else:
                revision = self.etcd.put_if(res.key(namespace, name), encode(updated), mod_revision)
                if revision is not None:
                    meta["resourceVersion"] = str(revision)
                    return updated
            if not retry:
                raise errors.conflict(res.plural, name, res.group)
        raise errors.conflict(res.plural, name, res.group)

    def delete(self, res: ResourceType, namespace: str | None, name: str, *, dry_run: bool = False) -> dict:
        """Objects with finalizers get a deletionTimestamp and stay until the finalizers are gone."""
        for _ in range(_MAX_CAS_RETRIES):
            current, mod_revision = self._read(res, namespace, name)
            meta = current["metadata"]
            if dry_run:
                return current
            if meta.get("finalizers") or res.plural == "namespaces":
                if meta.get("deletionTimestamp"):
                    return current
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                if res.plural == "namespaces":
                    current.setdefault("status", {})["phase"] = "Terminating"
                revision = self.etcd.put_if(res.key(namespace, name), encode(current), mod_revision)
                if revision is not None:
                    meta["resourceVersion"] = str(revision)
                    return current
            elif self.etcd.delete_if(res.key(namespace, name), mod_revision):
                return current
        raise errors.conflict(res.plural, name, res.group)

    def finish_namespace(self, name: str) -> bool:
        """Delete everything in a terminating namespace; remove it once empty. True when it is gone."""
        remaining = 0
        for res in RESOURCES:
            if not res.namespaced:
                continue
            items, _ = self.list(res, name)
            for item in items:
                try:
                    deleted = self.delete(res, name, item["metadata"]["name"])
                except errors.ApiError as exc:
                    if exc.code != 404:
                        raise
                    continue
                if deleted["metadata"].get("finalizers"):
                    remaining += 1
        if remaining:
            return False
        ns_res = find("", "v1", "namespaces")
        assert ns_res is not None
        kv = self.etcd.get(ns_res.key(None, name))
        return kv is None or self.etcd.delete_if(ns_res.key(None, name), kv.mod_revision)

    def put_raw(self, res: ResourceType, obj: dict) -> None:
        """Unconditional write used by the seed and the simulated controllers."""
        meta = obj["metadata"]
        self.etcd.put(res.key(meta.get("namespace"), meta["name"]), encode(obj))


def _protect_identity(current: dict, updated: dict, res: ResourceType) -> None:
    """Fields a client may not change through update or patch."""
    meta = updated.setdefault("metadata", {})
    old = current["metadata"]
    for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
        if field in old:
            meta[field] = old[field]
        else:
            meta.pop(field, None)
    if "generation" in old:
        meta["generation"] = old["generation"]
    updated["apiVersion"] = res.group_version
    updated["kind"] = res.kind


def merge_for_subresource(res: ResourceType, current: dict, body: dict, subresource: str | None) -> dict:
    """What an update writes: the status subresource takes only status, the main resource keeps status."""
    if subresource == "status":
        updated = copy.deepcopy(current)
        if "status" in body:
            updated["status"] = copy.deepcopy(body["status"])
        else:
            updated.pop("status", None)
        return updated
    if subresource == "approval":
        updated = copy.deepcopy(current)
        conditions = body.get("status", {}).get("conditions") or []
        stamped = []
        for condition in conditions:
            condition = dict(condition)
            condition.setdefault("lastUpdateTime", now_rfc3339())
            condition.setdefault("lastTransitionTime", now_rfc3339())
            stamped.append(condition)
        updated.setdefault("status", {})["conditions"] = stamped
        return updated
    updated = copy.deepcopy(body)
    updated.setdefault("metadata", {})
    if res.has_status:
        if "status" in current:
            updated["status"] = copy.deepcopy(current["status"])
        else:
            updated.pop("status", None)
    return updated


def _defaults(res: ResourceType, obj: dict) -> None:
    """Defaults the real API server fills in, where clients read them right after creating."""
    if res.plural == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    elif res.plural == "pods":
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif res.plural == "certificatesigningrequests" or res.plural == "machines":
        obj.setdefault("status", {})
    elif res.plural in ("persistentvolumeclaims",):
        obj.setdefault("status", {}).setdefault("phase", "Pending")
