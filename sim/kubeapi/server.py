"""The simulated kube-apiserver: HTTPS + bearer token in front of etcd, plus the simulated operators."""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from . import errors
from .blips import Blip, Blips, BlipSettings, RolloutWatch
from .certs import CertPair, issue_cert, load_pair, make_ca, write_pair
from .etcd import EtcdClient
from .handler import ApiHandler
from .operators import Operators, Timing
from .operators.staticpods import Installer
from .resources import ResourceType, find
from .seed import ClusterFacts, seed_cluster
from .store import ObjectStore

log = logging.getLogger("sim.kubeapi")


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        self.ssl_context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread, so a stalled client cannot block accept().
        request.settimeout(30)
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        tls.settimeout(None)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class KubeApiServer:
    """One cluster's API endpoint.

    `control_plane_up` is asked on every request; while it returns False the API answers 503, as a load
    balancer in front of stopped kube-apiservers would. With `blips` (blips.py), API requests get
    transient errors while `degraded` says the API is fragile (the twin: one kube-apiserver runs) or a
    kube-apiserver revision rolls out, and `restart_apiserver` makes it refuse connections for a while.
    """

    def __init__(
        self,
        *,
        etcd_endpoints: list[str],
        etcd_ca: str | Path,
        etcd_cert: str | Path,
        etcd_key: str | Path,
        state_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 6443,
        control_plane_up: Callable[[], bool] = lambda: True,
        openshift_version: str = "4.14.38",
        installer_provisioned: bool = True,
        timing: Timing | None = None,
        run_operators: bool = True,
        replace_deleted_masters: bool = False,
        cluster_name: str = "twin",
        installer: Installer | None = None,
        host_managed: Callable[[str], bool] = lambda _node: False,
        adopt_host: Callable[[dict], tuple[str, str] | None] | None = None,
        blips: BlipSettings | None = None,
        degraded: Callable[[], bool] = lambda: False,
    ) -> None:
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir)
        self.control_plane_up = control_plane_up
        self.openshift_version = openshift_version
        self.cluster_name = cluster_name
        self.etcd = EtcdClient(
            etcd_endpoints, ca_file=str(etcd_ca), cert_file=str(etcd_cert), key_file=str(etcd_key)
        )
        self.store = ObjectStore(self.etcd)
        self.token = ""
        self.ca: CertPair | None = None
        self.operators = Operators(
            self.store,
            timing or Timing.fast(),
            installer_provisioned=installer_provisioned,
            replace_deleted_masters=replace_deleted_masters,
            is_up=self.is_up,
            ca=lambda: self.ca,
            installer=installer,
            host_managed=host_managed,
            adopt_host=adopt_host,
        )
        self._run_operators = run_operators
        rollout = RolloutWatch(self.store)
        self.blips = Blips(blips or BlipSettings(), lambda: degraded() or rollout())
        self.generation = 0
        """Counts kube-apiserver restarts: a connection opened before the last one is dead."""
        self._listen_lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._httpd: _TLSServer | None = None
        self._last_error_log = 0.0
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- paths clients use -----

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.crt"

    # ----- lifecycle -----

    def _ensure_credentials(self) -> ssl.SSLContext:
        """Reuse the CA, serving certificate and token across restarts so kubeconfigs stay valid."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ca_key = self.state_dir / "ca.key"
        if not ca_key.exists():
            write_pair(make_ca(f"kube-apiserver-{self.cluster_name}-ca"), self.ca_path, ca_key)
        self.ca = load_pair(self.ca_path, ca_key)
        serving_crt, serving_key = self.state_dir / "serving.crt", self.state_dir / "serving.key"
        if not serving_key.exists():
            pair = issue_cert(self.ca, "kube-apiserver", [self.host, "localhost", "api"], client=False)
            write_pair(pair, serving_crt, serving_key)
        token_file = self.state_dir / "token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(32) + "\n")
            token_file.chmod(0o600)
        self.token = token_file.read_text().strip()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(serving_crt, serving_key)
        return context

    def write_kubeconfig(self, path: Path | None = None, server: str | None = None) -> Path:
        """Write a self-contained kubeconfig (CA data + bearer token); `server` overrides the URL,
        e.g. https://localhost:6443 for a host's localhost-recovery.kubeconfig."""
        path = path or self.kubeconfig_path
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.cluster_name,
                    # The CA is embedded so the file also works inside a host's mount namespace.
                    "cluster": {
                        "server": server or self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_path.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": f"admin-{self.cluster_name}", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": f"admin@{self.cluster_name}",
                    "context": {"cluster": self.cluster_name, "user": f"admin-{self.cluster_name}"},
                }
            ],
            "current-context": f"admin@{self.cluster_name}",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def start(self) -> None:
        self.stopping.clear()
        self._context = self._ensure_credentials()
        self._listen()
        self.write_kubeconfig()
        if self._run_operators:
            self.operators.start()
        log.info("API server listening on %s", self.url)

    def _listen(self) -> None:
        assert self._context is not None
        handler = type("BoundApiHandler", (ApiHandler,), {"api": self})
        self._httpd = _TLSServer((self.host, self.port), handler, self._context)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="kubeapi-http", daemon=True)
        self._thread.start()

    def _close_listener(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        self.stopping.set()
        self.operators.stop()
        with self._listen_lock:
            self._close_listener()

    def restart_apiserver(self, seconds: float) -> None:
        """The kube-apiserver that serves the API restarts (a revision landed on it): open connections
        die and new ones are refused for `seconds`, then it listens again."""
        if seconds <= 0:
            return
        with self._listen_lock:
            if self._httpd is None or self.stopping.is_set():
                return
            self.generation += 1
            self._close_listener()
        log.info("kube-apiserver restarting: connections refused for %.1f s", seconds)
        timer = threading.Timer(seconds, self._listen_again)
        timer.daemon = True
        timer.start()

    def _listen_again(self) -> None:
        with self._listen_lock:
            if self._httpd is not None or self.stopping.is_set():
                return
            try:
                self._listen()
            except OSError:
                # Someone took the address meanwhile: try again shortly rather than stay deaf.
                log.exception("could not listen on %s again; retrying", self.url)
                timer = threading.Timer(1.0, self._listen_again)
                timer.daemon = True
                timer.start()

    def blip(self, method: str) -> Blip | None:
        return self.blips.pick(method)

    def log_blip(self, blip: Blip, method: str, path: str) -> None:
        # One line each: a drill's kubeapi.log then shows what drbot had to ride through.
        when = " after carrying it out" if blip.after else ""
        log.info("API blip: %s for %s %s%s", blip.kind, method, path, when)

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def is_up(self) -> bool:
        try:
            return bool(self.control_plane_up())
        except Exception:
            # A broken probe must not turn into 500s: treat it as "no kube-apiserver running".
            log.exception("control_plane_up check failed; answering as down")
            return False

    def seed(self, facts: ClusterFacts) -> int:
        """Create the cluster's initial objects that are missing (idempotent); returns how many were made."""
        return seed_cluster(self.store, facts)

    # ----- used by the handler -----

    def log_request(self, method: str, path: str, line: str) -> None:
        log.debug("%s", line)

    def log_error(self, message: str) -> None:
        # During a drill etcd is down for minutes: one line every few seconds says it without flooding.
        now = time.monotonic()
        if now - self._last_error_log >= 5:
            self._last_error_log = now
            log.warning("%s", message)

    def prepare_create(self, res: ResourceType, namespace: str | None, body: dict) -> dict:
        """A dry-run create answers with the object as given, without storing it."""
        return {**body, "apiVersion": res.group_version, "kind": res.kind}

    def delete_namespace(self, name: str) -> dict:
        ns_res = find("", "v1", "namespaces")
        assert ns_res is not None
        marked = self.store.delete(ns_res, None, name)
        self.store.finish_namespace(name)
        return marked

    # ----- hooks for the twin (also served as POST /sim/v1/...) -----

    def file_bootstrap_csr(self, node_name: str) -> str:
        """What a kubelet restarted with an empty /var/lib/kubelet/pki does: node goes NotReady and a
        node-bootstrapper CSR appears. Returns the CSR name."""
        return self.operators.file_bootstrap_csr(node_name)

    def set_node_ready(self, node_name: str, ready: bool, message: str = "") -> None:
        self.operators.set_node_ready(node_name, ready, message)

    def hook(self, method: str, path: str, body: Any) -> dict:
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 5 and parts[2] == "nodes" and parts[4] == "bootstrap-csr":
            return {"csr": self.file_bootstrap_csr(parts[3])}
        if method == "POST" and len(parts) == 3 and parts[2] == "forged-csr":
            return {"csr": self.operators.file_forged_csr(str((body or {}).get("kind", "")))}
        if method == "POST" and len(parts) == 5 and parts[2] == "nodes" and parts[4] == "ready":
            body = body or {}
            self.set_node_ready(parts[3], bool(body.get("ready", True)), str(body.get("message", "")))
            return {"node": parts[3], "ready": bool(body.get("ready", True))}
        raise errors.ApiError(
            404,
            "NotFound",
            f"unknown hook {method} {path}; use POST /sim/v1/nodes/NAME/bootstrap-csr, "
            'POST /sim/v1/nodes/NAME/ready with {"ready": true|false} or '
            'POST /sim/v1/forged-csr with {"kind": "wrong-requestor"|"unknown-node"}',
        )
