"""Who may start what, from where, with which arguments: the clusters file's rules as plain data."""

from __future__ import annotations

from typing import Any

import pytest

from procedures import params
from procedures.clusters import Cluster, ConfigError, parse_clusters


def cluster(**extra: Any) -> Cluster:
    entry = {
        "name": "prod",
        "channel": "C0INCIDENT",
        "ssh": {"key": "/k", "known_hosts": "/kh"},
        "hosts": [{"name": "master-0", "address": "10.0.0.10"}],
        **extra,
    }
    return parse_clusters({"clusters": [entry]}).get("prod")


def test_a_misspelt_key_is_refused_instead_of_leaving_the_cluster_without_approvers() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'aprovers'.*approvers"):
        cluster(aprovers=["U0ALICE"])


def test_procedures_start_in_the_listed_channels_or_name_prefixes_else_the_clusters_channel() -> None:
    assert cluster().allows_channel("C0INCIDENT", "incident")
    assert not cluster().allows_channel("C0RANDOM", "random")
    listed = cluster(channels=["C0WAR", "inc-*"])
    assert listed.allows_channel("C0WAR", "war-room")
    assert listed.allows_channel("C0NEW", "inc-2026-12-03-etcd")
    assert not listed.allows_channel("C0INCIDENT", "incident"), "the list replaces the default"
    assert not listed.allows_channel("C0X", "xinc-1")
    with pytest.raises(ConfigError, match=r"channel id .* or a channel name prefix ending in"):
        cluster(channels=["#incidents"])


def test_operators_are_slack_users_or_groups() -> None:
    assert cluster(operators=["U0CAROL", "S0ONCALL"]).operators == ("U0CAROL", "S0ONCALL")
    with pytest.raises(ConfigError, match="operators entry 'carol'"):
        cluster(operators=["carol"])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/home/core/assets/backup", None),
        ("/home/core/assets/backup/2026-12-03", None),
        ("/var/backups/etcd/", None),
        ("/tmp", "params.path_outside"),
        ("/home/core/assets/backup-evil", "params.path_outside"),
        ("../x", "params.path_form"),
        ("/home/core/assets/backup/../../../etc", "params.path_form"),
        ("/home/core/assets/backup/$(touch x)", "params.path_form"),
        ("/home/core/assets/backup;rm -rf /", "params.path_form"),
        ("/home/core//assets/backup", "params.path_form"),
    ],
)
def test_backup_paths_must_be_plain_and_under_an_allowed_root(value: str, problem: str | None) -> None:
    found = params.backup_path(value, cluster(backup_prefixes=["/var/backups/etcd"]))
    assert (found.key if found else None) == problem


def test_every_wrong_argument_is_named_with_its_rule() -> None:
    checks = {"dir": params.backup_path, "host": params.control_plane_host}
    found = params.problems(checks, {"dir": "/tmp", "host": "master-9"}, cluster())
    assert [(p.args["name"], p.args["problem"]["key"]) for p in found] == [
        ("dir", "params.path_outside"),
        ("host", "params.unknown_host"),
    ]
