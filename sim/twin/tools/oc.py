"""oc for a twin host: `oc get` over the twin's API, as OpenShift's scripts call it on RHCOS
(cluster-backup.sh: `oc get co etcd -o jsonpath='{.status.conditions[?(@.type=="Progressing")].status}'`
with KUBECONFIG set to the node's localhost kubeconfig).

A thin client: resource types found through API discovery (names, singular names, short names,
kinds), the server's table printing, -o json|yaml|name|wide|jsonpath=TEMPLATE, -n, -A, -l,
--kubeconfig or $KUBECONFIG (bearer token, embedded CA); a request is retried as client-go retries a
GET (Retry-After on 429/5xx, a reset connection), and errors read as oc's. Other commands are refused.
Standard library and PyYAML only: it runs under the host's python3.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

import yaml

RETRIES = 10
"""client-go's limit for retried requests."""
TIMEOUT = 30.0
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
NO_SERVER = (
    "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
)


class OcError(Exception):
    """What oc prints to stderr before it exits 1."""


class Api:
    """GET requests to the cluster a kubeconfig names, over one kept-alive HTTPS connection."""

    def __init__(self, kubeconfig: dict) -> None:
        contexts = {c["name"]: c.get("context") or {} for c in kubeconfig.get("contexts") or []}
        context = contexts.get(kubeconfig.get("current-context", ""), {})
        clusters = {c["name"]: c.get("cluster") or {} for c in kubeconfig.get("clusters") or []}
        users = {u["name"]: u.get("user") or {} for u in kubeconfig.get("users") or []}
        cluster = clusters.get(context.get("cluster", ""))
        if not cluster or not cluster.get("server"):
            raise OcError(NO_SERVER)
        self.namespace = context.get("namespace") or "default"
        self.token = users.get(context.get("user", ""), {}).get("token")
        url = urllib.parse.urlsplit(cluster["server"])
        self.host, self.port = url.hostname or "localhost", url.port or 443
        self.context = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            self.context.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        elif cluster.get("certificate-authority"):
            self.context.load_verify_locations(cafile=cluster["certificate-authority"])
        self.connection: http.client.HTTPSConnection | None = None

    def get(self, path: str, accept: str = "application/json") -> dict:
        attempt = 0
        while True:
            attempt += 1
            try:
                status, retry_after, body = self._once(path, accept)
            except ConnectionRefusedError:
                raise OcError(
                    f"The connection to the server {self.host}:{self.port} was refused - "
                    "did you specify the right host or port?"
                ) from None
            except (
                ConnectionResetError,
                BrokenPipeError,
                http.client.RemoteDisconnected,
                http.client.IncompleteRead,
            ) as error:
                self._close()
                if attempt > RETRIES:
                    raise OcError(f"Unable to connect to the server: {error}") from None
                time.sleep(1)
                continue
            except (OSError, http.client.HTTPException) as error:
                raise OcError(f"Unable to connect to the server: {error}") from None
            if retry_after is not None and (status == 429 or 500 <= status <= 599) and attempt <= RETRIES:
                time.sleep(retry_after)
                continue
            if status >= 400:
                raise OcError(_server_error(status, body))
            return json.loads(body)

    def _once(self, path: str, accept: str) -> tuple[int, int | None, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=TIMEOUT
            )
        headers = {"Accept": accept, "User-Agent": "oc/4.14.0 (linux/amd64) twin"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.connection.request("GET", path, headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        retry_after = response.getheader("Retry-After")
        return response.status, int(retry_after) if retry_after and retry_after.isdigit() else None, body

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _server_error(status: int, body: bytes) -> str:
    try:
        detail = json.loads(body)
    except ValueError:
        detail = {}
    if status == 401:
        return "error: You must be logged in to the server (Unauthorized)"
    reason = detail.get("reason") or http.client.responses.get(status, "Unknown").replace(" ", "")
    message = detail.get("message") or "the server could not handle the request"
    return f"Error from server ({reason}): {message}"


def load_kubeconfig(flag: str | None) -> dict:
    if flag:
        if not os.path.exists(flag):
            raise OcError(f"error: stat {flag}: no such file or directory")
        paths = [flag]
    else:
        listed = [p for p in os.environ.get("KUBECONFIG", "").split(":") if p]
        paths = listed or [os.path.expanduser("~/.kube/config")]
    for path in paths:
        try:
            with open(path) as handle:
                return yaml.safe_load(handle) or {}
        except FileNotFoundError:
            continue
        except PermissionError:
            raise OcError(f"error: open {path}: permission denied") from None
    raise OcError(NO_SERVER)


class Resource:
    """A resource type as discovery lists it."""

    def __init__(self, group_version: str, entry: dict) -> None:
        self.group_version = group_version
        self.group = group_version.rpartition("/")[0]
        self.plural = entry["name"]
        self.kind = entry["kind"]
        self.namespaced = bool(entry.get("namespaced"))
        self.names = {
            self.plural,
            entry.get("singularName") or "",
            self.kind.lower(),
            *entry.get("shortNames", []),
        }

    def matches(self, wanted: str) -> bool:
        name, _, group = wanted.lower().partition(".")
        return name in self.names and (not group or group == self.group)

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = f"/apis/{self.group_version}" if self.group else f"/api/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace)}"
        return f"{base}/{self.plural}" + (f"/{urllib.parse.quote(name)}" if name else "")


def resolve(api: Api, wanted: str) -> Resource:
    """The type `wanted` names, looked up group by group (the core group first, as oc prefers it)."""
    versions = ["v1"]
    versions += [g["preferredVersion"]["groupVersion"] for g in api.get("/apis").get("groups", [])]
    for group_version in versions:
        prefix = "/apis/" if "/" in group_version else "/api/"
        for entry in api.get(prefix + group_version).get("resources", []):
            if "/" not in entry["name"] and Resource(group_version, entry).matches(wanted):
                return Resource(group_version, entry)
    raise OcError(f'error: the server doesn\'t have a resource type "{wanted}"')


def print_table(table: dict, wide: bool, all_namespaces: bool, empty: str) -> None:
    columns = [
        (i, c["name"]) for i, c in enumerate(table["columnDefinitions"]) if wide or not c.get("priority")
    ]
    rows = [[str(row["cells"][i]) for i, _ in columns] for row in table.get("rows", [])]
    headers = [name.upper() for _, name in columns]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
        for row, raw in zip(rows, table.get("rows", []), strict=True):
            row.insert(0, str(((raw.get("object") or {}).get("metadata") or {}).get("namespace", "")))
    if not rows:
        sys.stderr.write(empty + "\n")
        return
    # Go's tabwriter as kubectl configures it: columns padded by three spaces.
    widths = [max(len(r[i]) for r in [headers, *rows]) + 3 for i in range(len(headers))]
    for row in [headers, *rows]:
        print("".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)) + row[-1])


def get(args: argparse.Namespace, api: Api) -> None:
    words = args.words[1:]
    if not words:
        raise OcError("error: you must specify the type of resource to get")
    kind, _, slash_name = words[0].partition("/")
    names = ([slash_name] if slash_name else []) + words[1:]
    resource = resolve(api, kind)
    namespace = None if args.all_namespaces else (args.namespace or api.namespace)
    query = f"?labelSelector={urllib.parse.quote(args.selector)}" if args.selector else ""
    output = (args.output or "").lstrip("=")
    if output in ("", "wide"):
        scope = f" in {namespace} namespace" if resource.namespaced and namespace else ""
        for table in [api.get(resource.path(namespace, name), TABLE) for name in names] or [
            api.get(resource.path(namespace) + query, TABLE)
        ]:
            print_table(table, output == "wide", args.all_namespaces, f"No resources found{scope}.")
        return
    if names:
        objects = [api.get(resource.path(namespace, name)) for name in names]
        document = objects[0] if len(objects) == 1 else _list(objects)
    else:
        document = api.get(resource.path(namespace) + query)
        document = _list(document.get("items", []))
    items = document["items"] if document.get("kind") == "List" else [document]
    if output == "json":
        print(json.dumps(document, indent=4))
    elif output == "yaml":
        sys.stdout.write(yaml.safe_dump(document, default_flow_style=False))
    elif output == "name":
        prefix = resource.kind.lower() + (f".{resource.group}" if resource.group else "")
        for item in items:
            print(f"{prefix}/{item['metadata']['name']}")
    elif output.startswith("jsonpath="):
        sys.stdout.write(jsonpath(output.removeprefix("jsonpath="), document))
    else:
        raise OcError(
            f'error: unable to match a printer suitable for the output format "{output}", allowed formats '
            "are: json,jsonpath,name,wide,yaml (the twin's oc)"
        )


def _list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


# --- JSONPath, as kubectl's: {…} blocks between plain text, missing keys print nothing -------------


def jsonpath(template: str, document: object) -> str:
    out, rest = [], template
    while rest:
        start = rest.find("{")
        if start < 0:
            out.append(rest)
            break
        out.append(rest[:start])
        end = _closing(rest, start)
        values = _evaluate(rest[start + 1 : end].strip(), document, template)
        out.append(" ".join(_text(v) for v in values))
        rest = rest[end + 1 :]
    return "".join(out)


def _closing(text: str, start: int) -> int:
    quote = None
    for index in range(start + 1, len(text)):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "}":
            return index
    raise OcError(f"error: error parsing jsonpath {text}, unclosed action")


def _evaluate(expression: str, document: object, template: str) -> list:
    values = [document]
    rest = expression.removeprefix("$")
    while rest:
        if rest.startswith(".."):
            raise OcError(f"error: error parsing jsonpath {template}: the twin's oc has no recursive descent")
        if rest.startswith("."):
            field = ""
            rest = rest[1:]
            while rest and (rest[0].isalnum() or rest[0] in "_-"):
                field, rest = field + rest[0], rest[1:]
            values = [v[field] for v in values if isinstance(v, dict) and field in v] if field else values
        elif rest.startswith("["):
            end = _bracket_end(rest, template)
            values = _subscript(rest[1:end].strip(), values, template)
            rest = rest[end + 1 :]
        else:
            raise OcError(
                f"error: error parsing jsonpath {template}: the twin's oc understands .field, [N], [*], "
                "['field'] and [?(@.path==\"value\")]"
            )
    return values


def _bracket_end(text: str, template: str) -> int:
    quote, depth = None, 0
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth == 0:
                return index
    raise OcError(f"error: error parsing jsonpath {template}, unterminated array")


def _subscript(inside: str, values: list, template: str) -> list:
    if inside == "*":
        return [
            x
            for v in values
            for x in (v if isinstance(v, list) else v.values() if isinstance(v, dict) else [])
        ]
    if inside[:1] in "'\"":
        field = inside[1:-1]
        return [v[field] for v in values if isinstance(v, dict) and field in v]
    if inside.startswith("?(") and inside.endswith(")"):
        return [
            x for v in values if isinstance(v, list) for x in v if _keeps(inside[2:-1].strip(), x, template)
        ]
    try:
        index = int(inside)
    except ValueError:
        raise OcError(f"error: error parsing jsonpath {template}: unsupported subscript [{inside}]") from None
    return [v[index] for v in values if isinstance(v, list) and -len(v) <= index < len(v)]


def _keeps(condition: str, item: object, template: str) -> bool:
    for operator in ("==", "!="):
        left, found, right = condition.partition(operator)
        if found:
            if not left.strip().startswith("@"):
                break
            got = _evaluate(left.strip()[1:], item, template)
            want = _literal(right.strip())
            return (bool(got) and got[0] == want) == (operator == "==")
    raise OcError(f"error: error parsing jsonpath {template}: the twin's oc filters with == or != only")


def _literal(text: str) -> object:
    if text[:1] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="oc", add_help=False)
    top.add_argument("words", nargs="*")
    top.add_argument("--kubeconfig")
    top.add_argument("-n", "--namespace")
    top.add_argument("-A", "--all-namespaces", action="store_true")
    top.add_argument("-l", "--selector")
    top.add_argument("-o", "--output")
    return top


def main(argv: list[str] | None = None) -> int:
    args, unknown = parser().parse_known_intermixed_args(sys.argv[1:] if argv is None else argv)
    try:
        if unknown:
            raise OcError(f"error: unknown flag: {unknown[0]} (the twin's oc)")
        if not args.words or args.words[0] != "get":
            command = args.words[0] if args.words else ""
            raise OcError(f'error: unknown command "{command}" for "oc" (the twin\'s oc only runs `oc get`)')
        get(args, Api(load_kubeconfig(args.kubeconfig)))
    except OcError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
