"""Small HTTPS client for the twin's own API (DIR/kubeconfig's token and CA), for disasters and faults."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import yaml

from sim.twin.layout import TwinError, TwinSpec


def call(
    spec: TwinSpec, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> Any:
    try:
        config = yaml.safe_load((spec.dir / "kubeconfig").read_text())
    except FileNotFoundError:
        raise TwinError(
            f"{spec.dir / 'kubeconfig'} is missing: is the twin up? (drbot twin up --dir {spec.dir})"
        ) from None
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"]["token"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    request = urllib.request.Request(
        cluster["server"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise TwinError(f"the twin's API answered {error.code} to {method} {path}: {detail}") from None
    except OSError as error:
        raise TwinError(
            f"the twin's API at {cluster['server']} did not answer ({error}); is it up?"
        ) from None
