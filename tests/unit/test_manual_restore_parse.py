"""Parsing for the manual restore (5.4.2.3): the hosts' etcd files, ETCD_INITIAL_CLUSTER, etcdctl output,
and the checks that keep a hostile host's values out of the commands."""

import re

import pytest

from procedures.manual_restore_parse import (
    ETCD_ENV,
    RESTORE_POD_YAML,
    SNAPSHOT_MISSING,
    AddedMember,
    Member,
    ParseError,
    added_members,
    endpoint_problems,
    endpoint_status_table,
    etcd_name_from_restore_pod,
    etcdctl_image,
    expected_members,
    initial_cluster,
    member_lines_differ,
    peer_ip_from_etcd_env,
    read_member,
    restore_uuid,
    sections,
    snapshot_sum,
)
from procedures.restore_values import UntrustedValue

IMAGE = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "9d28c15860870e85c91d0e36b45f7a6e" * 2

POD_YAML = """apiVersion: v1
kind: Pod
spec:
  containers:
  - name: etcd
    command:
      - /bin/bash
      - -c
      - |
        #!/bin/sh
        export ETCD_NAME=${NODE_ip_10_0_91_5_ec2_internal_ETCD_NAME}
        export ETCD_INITIAL_CLUSTER="${ETCD_NAME}=https://${NODE_ip_10_0_91_5_ec2_internal_ETCD_URL_HOST}:2380"
    env:
    - name: "NODE_ip_10_0_91_5_ec2_internal_ETCD_NAME"
      value: "ip-10-0-91-5.ec2.internal"
    - name: "NODE_ip_10_0_91_5_ec2_internal_IP"
      value: "10.0.91.5"
"""

ENV_FILE = """export ETCDCTL_API="3"
export ALL_ETCD_ENDPOINTS="https://10.0.91.5:2379,https://10.0.90.221:2379"
export NODE_ip_10_0_91_5_ec2_internal_IP="10.0.91.5"
export NODE_ip_10_0_91_5_ec2_internal_ETCD_NAME="ip-10-0-91-5.ec2.internal"
export NODE_ip_10_0_91_5_ec2_internal_ETCD_URL_HOST="10.0.91.5"
export NODE_ip_10_0_90_221_ec2_internal_IP="10.0.90.221"
"""

# As the docs print it (zap console encoder) and as etcdctl 3.4/3.5 print it (JSON encoder).
CONSOLE = (
    '2022-06-28T19:52:43Z info membership/cluster.go:421 added member {"cluster-id": "c5996b7c11c30d6b", '
    '"local-member-id": "0", "added-peer-id": "56cd73b614699e7", "added-peer-peer-urls": '
    '["https://10.0.91.5:2380"], "added-peer-is-learner": false}'
)
JSON = (
    '{"level":"info","ts":1795950807.8,"caller":"membership/cluster.go:392","msg":"added member",'
    '"cluster-id":"c5996b7c11c30d6b","local-member-id":"0","added-peer-id":"1f63d01b31bb9a9e",'
    '"added-peer-peer-urls":["https://10.0.90.221:2380"]}'
)


def test_etcd_name_is_the_value_of_the_variable_export_etcd_name_refers_to() -> None:
    assert etcd_name_from_restore_pod(POD_YAML) == "ip-10-0-91-5.ec2.internal"


def test_a_pod_yaml_without_the_export_or_the_value_is_refused() -> None:
    with pytest.raises(ParseError, match="no `export ETCD_NAME"):
        etcd_name_from_restore_pod(POD_YAML.replace("export ETCD_NAME", "ETCD_NAME"))
    without_value = POD_YAML.replace('value: "ip-10-0-91-5.ec2.internal"', 'value: ""')
    with pytest.raises(ParseError, match="sets no value for NODE_ip_10_0_91_5_ec2_internal_ETCD_NAME"):
        etcd_name_from_restore_pod(without_value)


def test_peer_ip_comes_from_the_name_with_dots_and_dashes_as_underscores() -> None:
    assert peer_ip_from_etcd_env(ENV_FILE, "ip-10-0-91-5.ec2.internal") == "10.0.91.5"
    assert peer_ip_from_etcd_env(ENV_FILE, "ip-10-0-90-221.ec2.internal") == "10.0.90.221"


def test_an_etcd_env_without_the_hosts_ip_is_refused_naming_the_variable() -> None:
    with pytest.raises(
        ParseError, match=re.escape("no NODE_master_2_ec2_internal_IP for member master-2.ec2.internal")
    ):
        peer_ip_from_etcd_env(ENV_FILE, "master-2.ec2.internal")
    broken = ENV_FILE.replace('_IP="10.0.91.5"', '_IP="10.0.91"')
    with pytest.raises(UntrustedValue, match="not an IPv4 or IPv6 address"):
        peer_ip_from_etcd_env(broken, "ip-10-0-91-5.ec2.internal")


def test_initial_cluster_uses_the_peer_port_and_brackets_ipv6() -> None:
    members = [Member("h0", "master-0", "10.0.0.10"), Member("h1", "master-1", "fd00::11")]
    assert initial_cluster(members) == "master-0=https://10.0.0.10:2380,master-1=https://[fd00::11]:2380"


def test_initial_cluster_refuses_duplicate_names_or_ips() -> None:
    with pytest.raises(ParseError, match="several hosts call themselves master-0"):
        initial_cluster([Member("h0", "master-0", "10.0.0.10"), Member("h1", "master-0", "10.0.0.11")])
    with pytest.raises(ParseError, match=re.escape("peer IP 10.0.0.10")):
        initial_cluster([Member("h0", "master-0", "10.0.0.10"), Member("h1", "master-1", "10.0.0.10")])


def test_added_member_lines_in_both_log_formats() -> None:
    output = f"restoring snapshot\n{CONSOLE}\n{JSON}\nrestored snapshot\n"
    assert added_members(output) == [
        AddedMember("c5996b7c11c30d6b", "1f63d01b31bb9a9e", ("https://10.0.90.221:2380",)),
        AddedMember("c5996b7c11c30d6b", "56cd73b614699e7", ("https://10.0.91.5:2380",)),
    ]


def test_member_lines_are_compared_across_hosts() -> None:
    same = added_members(f"{CONSOLE}\n{JSON}")
    assert not member_lines_differ({"h0": same, "h1": added_members(f"{JSON}\n{CONSOLE}")})
    other = added_members(JSON.replace("c5996b7c11c30d6b", "0000000000000bad"))
    assert member_lines_differ({"h0": same, "h1": other})


def test_added_members_must_be_the_initial_cluster() -> None:
    members = [Member("h0", "a", "10.0.91.5"), Member("h1", "b", "10.0.90.221")]
    lines = added_members(f"{CONSOLE}\n{JSON}")
    assert expected_members({"h0": lines, "h1": lines}, members) == []
    assert expected_members({"h0": lines[:1]}, members) == [
        "h0: peer URLs https://10.0.90.221:2380 instead of https://10.0.90.221:2380, https://10.0.91.5:2380"
    ]


STATUS = "\n".join(
    (
        "+-------------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+",
        "|        ENDPOINT         |        ID        | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | RAFT APPLIED INDEX | ERRORS |",  # noqa: E501
        "+-------------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+",
        "| https://127.0.0.81:2379 | 40ca0484271ce516 |  3.4.23 |   20 kB |      true |      false |         2 |          8 |                  8 |        |",  # noqa: E501
        "| https://127.0.0.82:2379 | 67c9362abe50967d |  3.4.23 |   20 kB |     false |      false |         2 |          8 |                  8 |        |",  # noqa: E501
        "| https://127.0.0.83:2379 | 5279ff5439ceebb8 |  3.4.23 |   20 kB |     false |      false |         2 |          8 |                  8 |        |",  # noqa: E501
        "+-------------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+",
    )
)


def test_endpoint_status_table_healthy_and_not() -> None:
    rows = endpoint_status_table(STATUS)
    assert [r["IS LEADER"] for r in rows] == ["true", "false", "false"]
    assert endpoint_problems(rows, 3) == []
    assert endpoint_problems(rows[1:], 3) == ["2 endpoints answer, 3 expected", "0 leaders"]
    split = [*rows[:2], {**rows[2], "RAFT TERM": "3", "ERRORS": "etcdserver: no leader"}]
    assert endpoint_problems(split, 3) == [
        "https://127.0.0.83:2379: etcdserver: no leader",
        "the members are not on the same raft term",
    ]
    with pytest.raises(ParseError, match="no table"):
        endpoint_status_table("Error: context deadline exceeded")


def probe_output(
    pod: str = POD_YAML, env: str = ENV_FILE, old: str = "", tools: str = "", image: str = IMAGE
) -> str:
    mark = "@@drbot-section "
    return (
        f"{mark}pod.yaml\n{pod}\n{mark}etcd.env\n{env}\n{mark}image\n{image}\n"
        f"{mark}missing-tools\n{tools}\n{mark}old-member-data\n{old}\n{mark}etcd-data\nmember\n"
    )


def test_a_hosts_probe_gives_its_member_and_image() -> None:
    assert sections(probe_output())["etcd-data"] == "member"
    member, image = read_member("master-0", probe_output())
    assert member == Member("master-0", "ip-10-0-91-5.ec2.internal", "10.0.91.5")
    assert image == IMAGE


def test_a_hosts_probe_names_what_is_wrong() -> None:
    with pytest.raises(ParseError, match=re.escape("etcd.env is missing or empty")):
        read_member("m", probe_output(env=""))
    with pytest.raises(ParseError, match="missing tools: podman"):
        read_member("m", probe_output(tools="podman"))
    with pytest.raises(ParseError, match="old-member-data is not empty"):
        read_member("m", probe_output(old="member"))


# --- values a hostile host could plant (issue 11): refused with the file, the value and the pattern --------


def test_an_etcd_name_that_is_not_a_dns_name_is_refused_naming_the_file() -> None:
    hostile = POD_YAML.replace(
        'value: "ip-10-0-91-5.ec2.internal"', 'value: "ip-10-0-91-5.ec2.internal$(touch /tmp/PWNED)"'
    )
    with pytest.raises(UntrustedValue) as refused:
        etcd_name_from_restore_pod(hostile)
    text = str(refused.value)
    assert "ETCD_NAME 'ip-10-0-91-5.ec2.internal$(touch /tmp/PWNED)'" in text
    assert RESTORE_POD_YAML in text and "DNS-1123" in text
    for name in ("-leading-dash", "UPPER.example.com", "a" * 64, "x`id`", "x;y", "x\ny"):
        with pytest.raises(UntrustedValue):
            etcd_name_from_restore_pod(POD_YAML.replace("ip-10-0-91-5.ec2.internal", name))


def test_a_peer_ip_with_a_zone_or_shell_text_is_refused() -> None:
    key = "NODE_ip_10_0_91_5_ec2_internal_IP"
    for value in ("fe80::1%$(touch${IFS}PWNED)", "fe80::1%eth0", "10.0.91.5;id", "10.0.91.5\\n", "::g"):
        hostile = ENV_FILE.replace(f'{key}="10.0.91.5"', f'{key}="{value}"')
        with pytest.raises(UntrustedValue, match=re.escape(f"{key} ")) as refused:
            peer_ip_from_etcd_env(hostile, "ip-10-0-91-5.ec2.internal")
        assert ETCD_ENV in str(refused.value)
    ipv6 = ENV_FILE.replace(f'{key}="10.0.91.5"', f'{key}="fd00::5"')
    assert peer_ip_from_etcd_env(ipv6, "ip-10-0-91-5.ec2.internal") == "fd00::5"


def test_the_etcdctl_image_must_be_an_image_reference() -> None:
    assert etcdctl_image(f"{IMAGE}\n") == IMAGE
    assert etcdctl_image("registry.example.com:5000/etcd:v3.5.9") == "registry.example.com:5000/etcd:v3.5.9"
    with pytest.raises(ParseError, match="no etcdctl container image"):
        etcdctl_image("null")
    for hostile in (
        "--privileged",
        "quay.io/etcd;id",
        "quay.io/etcd@sha256:ab",
        "$(id)",
        "quay.io/etcd -v /:/h",
    ):
        with pytest.raises(UntrustedValue, match="is not an image reference"):
            etcdctl_image(hostile)


def test_the_restore_uuid_must_be_an_rfc_4122_uuid() -> None:
    assert restore_uuid("1b4e28ba-2fa1-41d2-883f-0016d3cca427\n") == "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    hostile = ";touch /tmp/PWNED;#".ljust(36, "0")
    assert len(hostile) == 36, "as long as a uuid: the old length check let it through"
    for value in (
        hostile,
        "1B4E28BA-2FA1-41D2-883F-0016D3CCA427",
        "1b4e28ba-2fa1-41d2-883f-0016d3cca427 x",
        "",
    ):
        with pytest.raises(UntrustedValue, match="RFC 4122") as refused:
            restore_uuid(value)
        assert "uuidgen" in str(refused.value)


def test_the_snapshot_checksum_is_a_sha256_or_missing() -> None:
    digest = "a" * 64
    assert snapshot_sum(f"{digest}  /b/snapshot_2026-11-29_111111.db\n", "/b/s.db") == digest
    assert snapshot_sum(f"{SNAPSHOT_MISSING}\n", "/b/s.db") == SNAPSHOT_MISSING
    for hostile in ("", "$(id)", "A" * 64):
        with pytest.raises(UntrustedValue, match=re.escape("sha256sum /b/s.db")):
            snapshot_sum(hostile, "/b/s.db")


def test_a_hosts_probe_refuses_a_hostile_image_or_name() -> None:
    with pytest.raises(UntrustedValue, match=re.escape("the etcdctl image '--entrypoint=/bin/sh'")):
        read_member("m", probe_output(image="--entrypoint=/bin/sh"))
    with pytest.raises(UntrustedValue, match=re.escape("ETCD_NAME 'a b'")):
        read_member(
            "m", probe_output(pod=POD_YAML.replace('value: "ip-10-0-91-5.ec2.internal"', 'value: "a b"'))
        )


def test_added_member_lines_with_hostile_ids_or_urls_are_refused() -> None:
    for old, new in (
        ('"https://10.0.91.5:2380"', '"<!channel> https://10.0.91.5:2380"'),
        ('"https://10.0.91.5:2380"', '"https://[fe80::1%eth0]:2380"'),
        ('"c5996b7c11c30d6b"', '"c5996b7c11c30d6b; rm -rf /"'),
    ):
        with pytest.raises(UntrustedValue, match="an `added member` line of etcdctl snapshot restore"):
            added_members(CONSOLE.replace(old, new))
