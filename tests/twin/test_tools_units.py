"""Pure logic of the host tools and the kubelet simulator (no twin needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.twin.kubelet import path_translator
from sim.twin.layout import TwinError, make_spec
from sim.twin.tools.crictl import human_duration, table


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.3, "Less than a second"),
        (1, "1 second"),
        (28, "28 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (7200, "2 hours"),
        (3 * 86400, "3 days"),
    ],
)
def test_created_column_reads_like_crictl(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_table_pads_columns_like_gos_tabwriter() -> None:
    out = table([("CONTAINER", "NAME"), ("3ad41b7908e32", "etcd")])
    assert out == "CONTAINER           NAME\n3ad41b7908e32       etcd\n"


def test_pod_paths_are_translated_to_host_paths() -> None:
    pod = {
        "spec": {
            "volumes": [
                {"name": "cert-dir", "hostPath": {"path": "/etc/kubernetes/static-pod-resources/etcd-certs"}},
                {"name": "data-dir", "hostPath": {"path": "/var/lib/etcd"}},
            ]
        }
    }
    container = {
        "volumeMounts": [
            {"name": "cert-dir", "mountPath": "/etc/kubernetes/static-pod-certs"},
            {"name": "data-dir", "mountPath": "/var/lib/etcd/"},
        ]
    }
    translate = path_translator(pod, container)
    assert translate("--cert=/etc/kubernetes/static-pod-certs/secrets/a.crt") == (
        "--cert=/etc/kubernetes/static-pod-resources/etcd-certs/secrets/a.crt"
    )
    assert (
        translate("/etc/kubernetes/static-pod-certs-other /var/lib/etcd")
        == "/etc/kubernetes/static-pod-certs-other /var/lib/etcd"
    )


def test_spec_names_hosts_like_openshift_and_rejects_bad_input() -> None:
    spec = make_spec("mgmt2", Path("/tmp/x"), "127.0.0.21", 3, 2222)
    assert [h.address for h in spec.hosts] == ["127.0.0.21", "127.0.0.22", "127.0.0.23"]
    assert (
        spec.hosts[1].name == "master-1.mgmt2.example.com"
        and spec.hosts[1].key == "master_1_mgmt2_example_com"
    )
    assert spec.api_vip == "127.0.0.20"
    with pytest.raises(TwinError, match="loopback address ending in 1"):
        make_spec("x", Path("/tmp/x"), "10.0.0.11", 3, 2222)
    with pytest.raises(TwinError, match="1 to 8"):
        make_spec("x", Path("/tmp/x"), "127.0.0.11", 9, 2222)
