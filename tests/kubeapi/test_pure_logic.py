"""Pure logic of the simulated API server: selectors, patches, paths, revision messages."""

from __future__ import annotations

import pytest

from sim.kubeapi.errors import ApiError
from sim.kubeapi.handler import parse_resource_path
from sim.kubeapi.operators.staticpods import revision_message
from sim.kubeapi.patches import apply_patch, json_patch, merge_patch, strategic_merge_patch
from sim.kubeapi.selectors import field_selector, label_selector


def _obj(labels: dict[str, str], **fields: object) -> dict:
    return {"metadata": {"name": "x", "labels": labels}, **fields}


def test_label_selector_operators() -> None:
    web = _obj({"app": "web", "tier": "front"})
    db = _obj({"app": "db"})
    assert label_selector("app=web")(web) and not label_selector("app=web")(db)
    assert label_selector("app!=web")(db)
    assert label_selector("app in (web, api),tier")(web)
    assert label_selector("app notin (web),!tier")(db)
    assert label_selector("node-role.kubernetes.io/master")(_obj({"node-role.kubernetes.io/master": ""}))
    with pytest.raises(ApiError) as bad:
        label_selector("=web")
    assert bad.value.code == 400


def test_field_selector_on_supported_fields() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"nodeName": "m0"},
        "status": {"phase": "Running"},
    }
    assert field_selector("spec.nodeName==m0,status.phase=Running")(pod)
    assert not field_selector("status.phase!=Running")(pod)
    with pytest.raises(ApiError) as bad:
        field_selector("spec.hostname=m0")
    assert "field label not supported" in bad.value.message


def test_merge_patch_removes_nulls_and_replaces_lists() -> None:
    target = {"spec": {"a": 1, "b": 2, "items": [1, 2]}}
    assert merge_patch(target, {"spec": {"b": None, "items": [3]}}) == {"spec": {"a": 1, "items": [3]}}


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    target = {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}
    patch = {"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}
    merged = strategic_merge_patch(target, patch)
    assert [(c["name"], c["image"]) for c in merged["spec"]["containers"]] == [
        ("a", "a:1"),
        ("b", "b:2"),
        ("c", "c:1"),
    ]
    deleted = strategic_merge_patch(target, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["b"]


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "list": [1, 2]}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "replace", "path": "/list/0", "value": 0},
            {"op": "test", "path": "/list/2", "value": 3},
        ],
    )
    assert patched == {"metadata": {"labels": {"b/c": "2"}}, "list": [0, 2, 3]}
    assert doc["list"] == [1, 2]
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(ApiError) as unsupported:
        apply_patch("application/apply-patch+yaml", doc, {})
    assert unsupported.value.code == 415


def test_resource_paths() -> None:
    pod = parse_resource_path("/api/v1/namespaces/ns1/pods/p1/status")
    assert pod is not None and (pod.res.plural, pod.namespace, pod.name, pod.subresource) == (
        "pods",
        "ns1",
        "p1",
        "status",
    )
    ns = parse_resource_path("/api/v1/namespaces/ns1")
    assert ns is not None and (ns.res.plural, ns.namespace, ns.name) == ("namespaces", None, "ns1")
    csr = parse_resource_path("/apis/certificates.k8s.io/v1/certificatesigningrequests/c1/approval")
    assert csr is not None and csr.subresource == "approval"
    config_net = parse_resource_path("/apis/config.openshift.io/v1/networks/cluster")
    operator_net = parse_resource_path("/apis/operator.openshift.io/v1/networks/cluster")
    assert config_net is not None and operator_net is not None
    assert config_net.res.key(None, "cluster") != operator_net.res.key(None, "cluster")
    assert parse_resource_path("/api/v1/namespaces/ns1/pods/p1/exec") is None
    assert parse_resource_path("/apis/nope.example.com/v1/things") is None


def test_revision_message_matches_the_documented_wording() -> None:
    statuses = [{"nodeName": n, "currentRevision": r} for n, r in (("a", 6), ("b", 6), ("c", 7))]
    assert revision_message(statuses, 7) == (False, "2 nodes are at revision 6; 1 nodes are at revision 7")
    assert revision_message(statuses[:2], 7) == (
        False,
        "2 nodes are at revision 6; 0 nodes have achieved new revision 7",
    )
    done = [{"nodeName": n, "currentRevision": 7} for n in "abc"]
    assert revision_message(done, 7) == (True, "3 nodes are at revision 7")
