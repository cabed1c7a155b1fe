"""The patterns values from hosts must match (issue 11), on plain data with hostile examples, and where
the 5.4.2.2 restore applies them: the probe's backup listing and VIPs, the backup check, `ip address del`."""

from __future__ import annotations

import pytest

from procedures.restore_host import Address, delete_address_command
from procedures.restore_preflight import parse_backup, parse_probe, untrusted_facts
from procedures.restore_values import (
    DEVICE,
    DNS_1123_NAME,
    IMAGE,
    IP_ADDRESS,
    IP_INTERFACE,
    PEER_URL,
    SNAPSHOT_NAME,
    UUID,
    Pattern,
    UntrustedValue,
    backup_file_problems,
    checked,
    shown,
)
from procedures.steps import StepFailed

GOOD: dict[str, tuple[Pattern, tuple[str, ...]]] = {
    "snapshot": (
        SNAPSHOT_NAME,
        ("snapshot_2026-11-29_111111.db", "snapshot_2026-11-29_111111__POSSIBLY_DIRTY__.db"),
    ),
    "name": (DNS_1123_NAME, ("master-0", "ip-10-0-91-5.ec2.internal", "a" * 63)),
    "ip": (IP_ADDRESS, ("10.0.0.5", "fd00::5", "::ffff:10.0.0.5")),
    "peer": (PEER_URL, ("https://10.0.0.5:2380", "https://[fd00::5]:2380")),
    "uuid": (UUID, ("1b4e28ba-2fa1-41d2-883f-0016d3cca427",)),
    "image": (
        IMAGE,
        (
            "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "ab" * 32,
            "registry.local:5000/etcd/etcd:v3.5.9",
            "etcd",
        ),
    ),
    "interface": (IP_INTERFACE, ("10.0.0.5/32", "fd00::5/128")),
    "device": (DEVICE, ("br-ex", "ens3.100", "veth0@if4")),
}
HOSTILE: dict[str, tuple[Pattern, tuple[str, ...]]] = {
    "snapshot": (
        SNAPSHOT_NAME,
        (
            "snapshot_2024-01-01_000000;touch${IFS}PWNED;.db",
            "snapshot_2026-11-29_111111.db\n",
            "snapshot_2026-11-29_111111.db.sh",
            "snapshot_٢٠٢٦-11-29_111111.db",
            "snapshot_2026-11-29_111111\\nx.db",
        ),
    ),
    "name": (DNS_1123_NAME, ("m$(touch /tmp/PWNED)", "-m", "M", "m.", "a" * 64, ".".join(["a" * 63] * 4))),
    "ip": (IP_ADDRESS, ("fe80::1%$(touch${IFS}PWNED)", "fe80::1%eth0", "10.0.0.5;id", "10.0.0", "")),
    "peer": (
        PEER_URL,
        ("https://10.0.0.5:2379", "https://[fe80::1%x]:2380", "https://h:2380", "http://10.0.0.5:2380"),
    ),
    "uuid": (UUID, (";touch /tmp/PWNED;#00000000000000000", "1B4E28BA-2FA1-41D2-883F-0016D3CCA427")),
    "image": (IMAGE, ("--privileged", "etcd;id", "etcd@sha256:ab", "Etcd", "etcd $(id)", "a/" * 300 + "b")),
    "interface": (IP_INTERFACE, ("10.0.0.5/32;id", "10.0.0.5/33", "10.0.0.5")),
    "device": (DEVICE, ("br-ex;id", "-x", "eth0 up", "a" * 32)),
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_what_hosts_really_print_matches(kind: str) -> None:
    pattern, values = GOOD[kind]
    for value in values:
        assert checked(value, pattern, what=kind, source="test") == value


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_values_are_refused_naming_what_where_and_the_pattern(kind: str) -> None:
    pattern, values = HOSTILE[kind]
    for value in values:
        with pytest.raises(UntrustedValue) as refused:
            checked(value, pattern, what=kind, source="/etc/some/file")
        assert str(refused.value) == f"{kind} {shown(value)} (from /etc/some/file) is not {pattern.expected}"


def test_a_refused_value_is_shown_short_and_with_control_characters_escaped() -> None:
    assert shown("a\nb\x1b[31m") == "'a\\nb\\x1b[31m'"
    long = shown("x" * 500)
    assert long.endswith("…'") and len(long) < 70


def test_every_backup_like_file_in_the_directory_counts_not_only_the_newest() -> None:
    names = [
        "snapshot_2024-01-01_000000;touch${IFS}PWNED;.db",
        "snapshot;touch${IFS}PWNED;.db",
        "snapshot_2026-11-29_111111.db",
        "static_kuberesources_2026-11-29_111111__POSSIBLY_DIRTY__.tar.gz",
        "static_kuberesources_2026-11-29_111111.tar.gz",
        "backup-info_2026-11-29_111111.json",
        "backup-info_x;id.json",
    ]
    refused = backup_file_problems(names, "/home/core/assets/backup")
    assert [error.value for error in refused] == [names[0], names[1], names[6]], (
        "cluster-restore.sh: snapshot*.db"
    )
    assert "(from /home/core/assets/backup)" in str(refused[0])


def test_the_probe_refuses_hostile_backup_names_and_vips() -> None:
    probe = (
        "version=4.14.38\nvips=not a fact: the version file went on\n"
        "keepalived:spec:\n"
        "keepalived:  containers:\n"
        "keepalived:  - command:\n"
        "keepalived:    - runtimecfg\n"
        "keepalived:    - --api-vips\n"
        "keepalived:    - 10.0.0.5\n"
        'keepalived:    - "--ingress-vips=::::"\n'
        "file=snapshot_2026-11-29_111111.db\n"
        "file=static_kuberesources_2026-11-29_111111.tar.gz;id\n"
    )
    refused = untrusted_facts(parse_probe(probe), "/backup")
    assert [(error.what, error.value) for error in refused] == [
        ("the file name", "static_kuberesources_2026-11-29_111111.tar.gz;id"),
        ("the ingress VIP", "::::"),
    ]
    clean = (
        "keepalived:spec: {containers: [{command: [x, --api-vips, 10.0.0.5]}]}\n"
        "file=snapshot_2026-11-29_111111.db\n"
    )
    assert untrusted_facts(parse_probe(clean), "/backup") == []


def test_the_backup_check_refuses_a_hostile_snapshot_name() -> None:
    stdout = (
        "snapshot=snapshot_2099-01-01_000000;touch${IFS}PWNED;.db 2105376\n"
        "resources=static_kuberesources_2099-01-01_000000;touch${IFS}PWNED;.tar.gz 71234\n"
        'status={"hash":1,"revision":4242,"totalKey":900,"totalSize":2105376}\n'
    )
    with pytest.raises(UntrustedValue, match="is not a snapshot file name"):
        parse_backup(stdout, "/backup")


def test_ip_address_del_runs_only_with_what_ip_printed_checked() -> None:
    assert (
        delete_address_command("m0", Address("br-ex", "10.0.0.5/32"))
        == "ip address del 10.0.0.5/32 dev br-ex"
    )
    for address in (Address("br-ex;id", "10.0.0.5/32"), Address("br-ex", "10.0.0.5/32$(id)")):
        with pytest.raises(StepFailed) as refused:
            delete_address_command("m0", address)
        assert refused.value.summary.key == "restore.untrusted_address"
        assert refused.value.summary.args["host"] == "m0"
