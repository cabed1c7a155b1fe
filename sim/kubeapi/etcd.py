"""A small etcd v3 client over the JSON gRPC gateway (HTTPS, client certificate), with failover.

Every call has a hard deadline: a member without quorum answers linearizable requests only after its
own long request timeout, and the API server must turn that into a quick 503 instead of hanging.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit


class EtcdUnavailable(Exception):
    """No endpoint answered in time (down, no quorum, or refusing)."""


class WatchExpired(Exception):
    """The requested start revision was compacted away (Kubernetes answers 410 Gone)."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"required revision has been compacted (oldest available {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class WatchEvent:
    type: str  # "PUT" or "DELETE"
    kv: KeyValue
    prev_kv: KeyValue | None


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with `prefix` (etcdctl --prefix)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def _kv(item: dict) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(item["key"]).decode(),
        value=base64.b64decode(item.get("value", "")),
        mod_revision=int(item.get("mod_revision", 0)),
        create_revision=int(item.get("create_revision", 0)),
    )


class _Endpoint:
    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"etcd endpoint {url!r} must look like https://HOST:PORT")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 2379
        self._context = context
        self._idle: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()

    def connect(self, timeout: float) -> tuple[http.client.HTTPSConnection, bool]:
        """A pooled connection if there is one (reused=True), else a new one."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return self.fresh(timeout), False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def fresh(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self._context, timeout=timeout)

    def drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def release(self, conn: http.client.HTTPSConnection) -> None:
        with self._lock:
            if len(self._idle) < 8:
                self._idle.append(conn)
                return
        conn.close()


def _exchange(
    conn: http.client.HTTPSConnection, path: str, body: dict
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response, response.read()


class EtcdClient:
    def __init__(
        self,
        endpoints: list[str],
        *,
        ca_file: str,
        cert_file: str,
        key_file: str,
        deadline: float = 1.5,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed, e.g. https://127.0.0.11:2379")
        for label, path in (("CA", ca_file), ("client certificate", cert_file), ("client key", key_file)):
            if not os.path.isfile(path):
                raise ValueError(
                    f"etcd {label} file {path!r} does not exist; pass the twin's etcd client TLS files"
                )
        context = ssl.create_default_context(cafile=ca_file)
        context.load_cert_chain(cert_file, key_file)
        self._endpoints = [_Endpoint(url, context) for url in endpoints]
        self._preferred = 0
        self.deadline = deadline

    def _call(self, path: str, body: dict) -> dict:
        """POST to the first endpoint that answers, starting with the last one that did."""
        stop = time.monotonic() + self.deadline
        count = len(self._endpoints)
        errors: list[str] = []
        start = self._preferred
        for attempt in range(count):
            index = (start + attempt) % count
            remaining = stop - time.monotonic()
            if remaining <= 0.05:
                break
            # Leave time for the other members: a stuck one must not eat the whole budget.
            share = remaining if attempt == count - 1 else max(remaining / (count - attempt), 0.4)
            endpoint = self._endpoints[index]
            conn, reused = endpoint.connect(share)
            try:
                response, payload = _exchange(conn, path, body)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if not reused or isinstance(exc, TimeoutError):
                    errors.append(f"{endpoint.url}: {exc or type(exc).__name__}")
                    continue
                # A restarted member leaves every pooled connection dead: retry once on a new one.
                endpoint.drop_idle()
                conn = endpoint.fresh(share)
                try:
                    response, payload = _exchange(conn, path, body)
                except (OSError, http.client.HTTPException) as retry_exc:
                    conn.close()
                    errors.append(f"{endpoint.url}: {retry_exc or type(retry_exc).__name__}")
                    continue
            if response.status != 200:
                conn.close()
                errors.append(f"{endpoint.url}: HTTP {response.status} {payload[:200]!r}")
                continue
            endpoint.release(conn)
            self._preferred = index
            return json.loads(payload)
        raise EtcdUnavailable("; ".join(errors) or "etcd deadline exceeded")

    def get(self, key: str) -> KeyValue | None:
        result = self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = result.get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def range_prefix(self, prefix: str, revision: int = 0) -> tuple[list[KeyValue], int]:
        body: dict = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        if revision:
            body["revision"] = str(revision)
        result = self._call("/v3/kv/range", body)
        return [_kv(item) for item in result.get("kvs", [])], int(result["header"]["revision"])

    def revision(self) -> int:
        result = self._call("/v3/kv/range", {"key": _b64("\0"), "count_only": True})
        return int(result["header"]["revision"])

    def put(self, key: str, value: bytes) -> int:
        result = self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(result["header"]["revision"])

    def put_if(self, key: str, value: bytes, mod_revision: int) -> int | None:
        """Compare-and-swap: write only if the key's mod_revision is still `mod_revision` (0: absent)."""
        compare = (
            {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
            if mod_revision == 0
            else {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}
        )
        result = self._call(
            "/v3/kv/txn",
            {"compare": [compare], "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}]},
        )
        return int(result["header"]["revision"]) if result.get("succeeded") else None

    def delete_if(self, key: str, mod_revision: int) -> bool:
        compare = {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}
        result = self._call(
            "/v3/kv/txn", {"compare": [compare], "success": [{"request_delete_range": {"key": _b64(key)}}]}
        )
        return bool(result.get("succeeded"))

    def delete_prefix(self, prefix: str) -> None:
        self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})

    def watch(self, prefix: str, start_revision: int) -> EtcdWatch:
        return EtcdWatch(self, prefix, start_revision)


class EtcdWatch:
    """One streaming /v3/watch request. Iterating blocks until the next event; `close()` from another
    thread ends the iteration (reads have no timeout, since a timed-out read corrupts the chunked stream)."""

    def __init__(self, client: EtcdClient, prefix: str, start_revision: int) -> None:
        self._client = client
        self._prefix = prefix
        self._start = start_revision
        self._conn: http.client.HTTPSConnection | None = None
        self._closed = False

    def close(self) -> None:
        self._closed = True
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def _open(self) -> http.client.HTTPResponse:
        body = {
            "create_request": {
                "key": _b64(self._prefix),
                "range_end": _b64(prefix_end(self._prefix)),
                "start_revision": str(self._start),
                "prev_kv": True,
                "progress_notify": True,
            }
        }
        errors = []
        for endpoint in self._client._endpoints:
            conn = http.client.HTTPSConnection(
                endpoint.host, endpoint.port, context=endpoint._context, timeout=self._client.deadline
            )
            try:
                conn.request("POST", "/v3/watch", json.dumps(body), {"Content-Type": "application/json"})
                response = conn.getresponse()
                if response.status == 200:
                    first = response.readline()
                    if b'"created":true' in first:
                        assert conn.sock is not None
                        conn.sock.settimeout(None)
                        self._conn = conn
                        return response
                errors.append(f"{endpoint.url}: HTTP {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{endpoint.url}: {exc}")
            conn.close()
        raise EtcdUnavailable("; ".join(errors))

    def __iter__(self) -> Iterator[WatchEvent]:
        response = self._open()
        try:
            while not self._closed:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException):
                    return
                if not line:
                    return
                result = json.loads(line).get("result", {})
                if int(result.get("compact_revision", 0)) > 0:
                    raise WatchExpired(int(result["compact_revision"]))
                if result.get("canceled"):
                    return
                for event in result.get("events", []):
                    prev = event.get("prev_kv")
                    yield WatchEvent(
                        type=event.get("type", "PUT"),
                        kv=_kv(event["kv"]),
                        prev_kv=_kv(prev) if prev else None,
                    )
        finally:
            if self._conn is not None:
                self._conn.close()
