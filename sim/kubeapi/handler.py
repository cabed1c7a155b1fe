"""The HTTP request handler: authentication, routing, verbs, subresources and watch streams."""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import discovery, errors
from .blips import INTERNAL, RESET, RETRY_AFTER, THROTTLED, Blip, internal_error, throttled
from .etcd import EtcdUnavailable, EtcdWatch, WatchExpired
from .patches import apply_patch
from .resources import ResourceType, find
from .selectors import Predicate, field_selector, label_selector
from .store import decode, merge_for_subresource
from .table import to_table, wants_table

if TYPE_CHECKING:
    from .server import KubeApiServer

_HEALTH = ("/healthz", "/readyz", "/livez")
_HOOKS = "/sim/v1/"
log = logging.getLogger("sim.kubeapi.handler")


@dataclass(frozen=True)
class Target:
    res: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> Target | None:
    """Map /api/v1/... or /apis/G/V/... to a resource, namespace, name and subresource."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        res = find(group, version, rest[2])
        if res is not None and res.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    res = find(group, version, rest[0])
    if res is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if (
        sub is not None
        and sub not in res.subresources
        and not (res.plural == "namespaces" and sub == "finalize")
    ):
        return None
    return Target(res, namespace, name, sub)


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "drbot-twin-kubeapi"
    api: KubeApiServer  # set by the server on a subclass
    _wrap: Callable[[dict], dict] | None = None
    _streaming = False
    _lost: Blip | None = None
    """A blip that strikes after the request was carried out: its answer is replaced."""
    _generation = 0

    def setup(self) -> None:
        super().setup()
        self._generation = self.api.generation

    def log_message(self, format: str, *args: Any) -> None:
        self.api.log_request(self.command, self.path, format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # ----- plumbing -----

    def _send_json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if self._lost is not None:
            lost, self._lost = self._lost, None
            self._answer_blip(lost)
            return
        payload = json.dumps(body).encode()
        self.send_response(code, errors.phrase(code))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _answer_blip(self, blip: Blip) -> None:
        if blip.kind == INTERNAL:
            self._send_json(500, internal_error().status())
        elif blip.kind == THROTTLED:
            self._send_json(429, throttled().status(), {"Retry-After": str(RETRY_AFTER)})
        elif blip.kind == RESET:
            self._reset()

    def _reset(self) -> None:
        """Drop the connection with a TCP RST, no answer: what a client sees when the server dies."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _send_text(self, code: int, text: str) -> None:
        payload = text.encode()
        self.send_response(code, errors.phrase(code))
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _empty_openapi(self) -> None:
        """An OpenAPI v2 document with no definitions (an empty protobuf message is a valid one).

        kubectl apply refuses to run without one; with no schemas it falls back to its built-in
        patch metadata for core types and to a JSON merge patch for the OpenShift types."""
        self.send_response(200)
        self.send_header("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise errors.bad_request(f"request body is not valid JSON: {exc}") from None

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {self.api.token}".encode())

    def _dispatch(self) -> None:
        self._streaming = False
        self._wrap = None
        self._lost = None
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            body = self._read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else None
            if self._generation != self.api.generation:
                # This connection went to a kube-apiserver that has restarted since.
                self._reset()
                return
            if not self._authorized():
                raise errors.unauthorized()
            if not self.api.is_up():
                raise errors.unavailable("the control plane is down: no kube-apiserver is running")
            path = url.path.rstrip("/") or "/"
            if self._blipped(path):
                return
            self._route(path, query, body)
        except errors.ApiError as exc:
            self._send_json(exc.code, exc.status())
        except EtcdUnavailable as exc:
            self.api.log_error(f"etcd unavailable: {exc}")
            failure = errors.unavailable("etcdserver: request timed out (etcd has no quorum or is down)")
            self._send_json(503, failure.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            # A bug must still answer with a Status, not a dropped connection the client retries blindly.
            log.exception("%s %s failed", self.command, self.path)
            self.close_connection = True
            if not self._streaming:
                failure = errors.ApiError(500, "InternalError", f"Internal error occurred: {exc}")
                self._send_json(500, failure.status())

    def _blipped(self, path: str) -> bool:
        """True when this request got a blip instead of an answer; a blip that strikes after the
        request is carried out is kept for _send_json."""
        if path in _HEALTH or path.startswith(_HOOKS):
            return False
        blip = self.api.blip(self.command)
        if blip is None:
            return False
        self.api.log_blip(blip, self.command, path)
        if blip.after:
            self._lost = blip
            return False
        self._answer_blip(blip)
        return True

    def _route(self, path: str, query: dict[str, str], body: Any) -> None:
        method = self.command
        if path in _HEALTH:
            self.api.etcd.revision()
            self._send_text(200, "ok")
            return
        if method == "GET":
            document = self._discovery(path)
            if document is not None:
                self._send_json(200, document)
                return
        if path == "/openapi/v2" and method == "GET":
            self._empty_openapi()
            return
        if path.startswith(_HOOKS):
            self._send_json(200, self.api.hook(method, path, body))
            return
        target = parse_resource_path(path)
        if target is None:
            raise errors.ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        self._resource(target, query, body)

    def _discovery(self, path: str) -> dict | None:
        if path == "/version":
            return discovery.kube_version(self.api.openshift_version)
        if path == "/api":
            return discovery.api_versions(f"{self.api.host}:{self.api.port}")
        if path == "/apis":
            return discovery.api_group_list()
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"]:
            return discovery.resource_list("v1")
        if parts[0] == "apis" and len(parts) == 2:
            return discovery.api_group(parts[1])
        if parts[0] == "apis" and len(parts) == 3:
            return discovery.resource_list(f"{parts[1]}/{parts[2]}")
        return None

    # ----- resources -----

    def _resource(self, target: Target, query: dict[str, str], body: Any) -> None:
        store = self.api.store
        res, ns, name, sub = target.res, target.namespace, target.name, target.subresource
        method = self.command
        dry_run = "dryRun" in query
        if name is None:
            if method == "GET" and (query.get("watch") or "").lower() in ("1", "true"):
                self._watch(target, query)
            elif method == "GET":
                listing = self._list(target, query)
                if self._table_wanted():
                    rv = listing["metadata"]["resourceVersion"]
                    self._send_json(200, to_table(res, listing["items"], rv, query.get("includeObject", "")))
                else:
                    self._send_json(200, listing)
            elif method == "POST":
                if not isinstance(body, dict):
                    raise errors.bad_request(f"POST needs a {res.kind} object as a JSON body")
                created = self.api.prepare_create(res, ns, body) if dry_run else store.create(res, ns, body)
                self._send_json(201, created)
            elif method == "DELETE":
                self._send_json(200, self._delete_collection(target, query, dry_run))
            else:
                raise errors.method_not_allowed(method)
            return
        if sub == "scale":
            self._scale(target, body, dry_run)
            return
        if method == "GET":
            obj = store.get(res, ns, name)
            if self._table_wanted() and sub is None:
                rv = obj["metadata"]["resourceVersion"]
                self._send_json(200, to_table(res, [obj], rv, query.get("includeObject", "")))
            else:
                self._send_json(200, obj)
        elif method == "PUT":
            if not isinstance(body, dict):
                raise errors.bad_request(f"PUT needs a {res.kind} object as a JSON body")
            self._send_json(200, store.update(res, ns, name, body, sub, dry_run=dry_run))
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type", "")
            self._send_json(200, self._patch(res, ns, name, sub, content_type, body, dry_run))
        elif method == "DELETE":
            if res.plural == "namespaces" and not dry_run:
                self._send_json(200, self.api.delete_namespace(name))
            else:
                self._send_json(200, store.delete(res, ns, name, dry_run=dry_run))
        else:
            raise errors.method_not_allowed(method)

    def _table_wanted(self) -> bool:
        return wants_table(self.headers.get("Accept", ""))

    def _patch(
        self,
        res: ResourceType,
        ns: str | None,
        name: str,
        sub: str | None,
        content_type: str,
        patch: Any,
        dry_run: bool,
    ) -> dict:
        def change(current: dict) -> dict:
            patched = apply_patch(content_type, current, patch)
            if sub is None and res.has_status:
                patched["status"] = copy.deepcopy(current.get("status"))
                if patched["status"] is None:
                    patched.pop("status")
            elif sub is not None:
                patched = merge_for_subresource(res, current, patched, sub)
            wanted = (
                (patch or {}).get("metadata", {}).get("resourceVersion") if isinstance(patch, dict) else None
            )
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            return patched

        return self.api.store.modify(res, ns, name, change, dry_run=dry_run)

    def _scale(self, target: Target, body: Any, dry_run: bool) -> None:
        res, ns, name = target.res, target.namespace, target.name
        assert name is not None
        store = self.api.store
        if self.command == "GET":
            self._send_json(200, to_scale(store.get(res, ns, name)))
            return
        if self.command not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(self.command)

        def change(current: dict) -> dict:
            scale = to_scale(current)
            if self.command == "PUT":
                wanted = (body or {}).get("metadata", {}).get("resourceVersion")
                if wanted and wanted != scale["metadata"]["resourceVersion"]:
                    raise errors.conflict(res.plural, name, res.group)
                new_scale = body
            else:
                new_scale = apply_patch(self.headers.get("Content-Type", ""), scale, body)
            replicas = (new_scale or {}).get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid("Scale.spec.replicas must be a non-negative integer")
            current.setdefault("spec", {})["replicas"] = replicas
            return current

        self._send_json(200, to_scale(store.modify(res, ns, name, change, dry_run=dry_run)))

    def _selected(self, query: dict[str, str]) -> Predicate:
        labels = label_selector(query.get("labelSelector"))
        fields = field_selector(query.get("fieldSelector"))
        return lambda obj: labels(obj) and fields(obj)

    def _list(self, target: Target, query: dict[str, str]) -> dict:
        res = target.res
        items, revision = self.api.store.list(res, target.namespace)
        selected = self._selected(query)
        items = [item for item in items if selected(item)]
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.group_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    def _delete_collection(self, target: Target, query: dict[str, str], dry_run: bool) -> dict:
        listing = self._list(target, query)
        deleted = [
            self.api.store.delete(
                target.res, item["metadata"].get("namespace"), item["metadata"]["name"], dry_run=dry_run
            )
            for item in listing["items"]
        ]
        return {**listing, "items": deleted}

    # ----- watch -----

    def _watch(self, target: Target, query: dict[str, str]) -> None:
        res = target.res
        selected = self._selected(query)
        timeout = float(query.get("timeoutSeconds") or 1800)
        stop_at = time.monotonic() + timeout
        since = int(query.get("resourceVersion") or 0)
        initial: list[dict] = []
        if since == 0:
            items, since = self.api.store.list(res, target.namespace)
            initial = [item for item in items if selected(item)]
        etcd_watch = self.api.etcd.watch(res.prefix(target.namespace), since + 1)
        events: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(etcd_watch, events), daemon=True)
        reader.start()
        self._streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        as_table = self._table_wanted()
        include = query.get("includeObject", "")
        self._wrap = (
            (lambda obj: to_table(res, [obj], obj["metadata"]["resourceVersion"], include))
            if as_table
            else None
        )
        try:
            for item in initial:
                self._chunk({"type": "ADDED", "object": item})
            self._stream(events, selected, stop_at)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            etcd_watch.close()

    def _stream(self, events: queue.Queue, selected: Predicate, stop_at: float) -> None:
        next_check = time.monotonic() + 1
        while time.monotonic() < stop_at:
            try:
                event = events.get(timeout=max(0.05, min(1.0, stop_at - time.monotonic())))
            except queue.Empty:
                event = None
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1
                # A real watch ends when the apiserver goes away; clients then re-list.
                if not self.api.is_up() or self.api.stopping.is_set():
                    return
            if event is None:
                continue
            if event is _END:
                return
            if isinstance(event, WatchExpired):
                gone = errors.ApiError(410, "Expired", f"too old resource version: {event}")
                self._chunk({"type": "ERROR", "object": gone.status()}, raw=True)
                return
            line = _watch_line(event, selected)
            if line is not None:
                self._chunk(line)

    def _chunk(self, event: dict, raw: bool = False) -> None:
        if self._wrap is not None and not raw:
            event = {**event, "object": self._wrap(event["object"])}
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


_END = object()


def _pump(etcd_watch: EtcdWatch, events: queue.Queue) -> None:
    try:
        for event in etcd_watch:
            events.put(event)
    except WatchExpired as exc:
        events.put(exc)
    except EtcdUnavailable:
        pass
    finally:
        events.put(_END)


def _watch_line(event: Any, selected: Callable[[dict], bool]) -> dict | None:
    previous = decode(event.prev_kv) if event.prev_kv else None
    if event.type == "DELETE":
        if previous is None or not selected(previous):
            return None
        previous["metadata"]["resourceVersion"] = str(event.kv.mod_revision)
        return {"type": "DELETED", "object": previous}
    obj = decode(event.kv)
    was = previous is not None and selected(previous)
    if selected(obj):
        kind = "MODIFIED" if was else "ADDED"
        return {"type": kind, "object": obj}
    if was:
        return {"type": "DELETED", "object": obj}
    return None


def to_scale(obj: dict) -> dict:
    meta = obj["metadata"]
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
        },
    }
