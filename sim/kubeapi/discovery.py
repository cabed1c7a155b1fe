"""Discovery documents (/api, /apis, /apis/G/V, /version) built from the resource table."""

from __future__ import annotations

from .resources import ALL_VERBS, READ_WRITE, RESOURCES, ResourceType, group_versions

# OpenShift minor → the Kubernetes minor it ships (4.12 = 1.25 … 4.17 = 1.30).
_KUBE_MINOR_OFFSET = 13


def kube_version(openshift_version: str) -> dict:
    major, minor = (int(part) for part in openshift_version.split(".")[:2])
    kube_minor = minor + _KUBE_MINOR_OFFSET if major == 4 else 27
    return {
        "major": "1",
        "minor": str(kube_minor),
        "gitVersion": f"v1.{kube_minor}.16+sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.20.12",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _resource_entries(res: ResourceType) -> list[dict]:
    entries = [
        {
            "name": res.plural,
            "singularName": res.singular_name,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(ALL_VERBS),
            **({"shortNames": list(res.short_names)} if res.short_names else {}),
        }
    ]
    for sub in res.subresources:
        kind = {"scale": "Scale", "approval": res.kind, "status": res.kind}[sub]
        entry: dict = {
            "name": f"{res.plural}/{sub}",
            "singularName": "",
            "namespaced": res.namespaced,
            "kind": kind,
            "verbs": list(READ_WRITE),
        }
        if sub == "scale":
            entry["group"] = "autoscaling"
            entry["version"] = "v1"
        entries.append(entry)
    return entries


def resource_list(group_version: str) -> dict | None:
    resources = group_versions().get(group_version)
    if resources is None:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [entry for res in resources for entry in _resource_entries(res)],
    }


def api_versions(server_address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str) -> dict:
    versions = sorted({res.version for res in RESOURCES if res.group == name})
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> dict:
    names = list(dict.fromkeys(res.group for res in RESOURCES if res.group))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(name) for name in names]}


def api_group(name: str) -> dict | None:
    if not any(res.group == name for res in RESOURCES):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}
