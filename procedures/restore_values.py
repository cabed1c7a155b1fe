"""Values the restores read from a control-plane host, checked against strict patterns before any use.

drbot's premise is that the hosts do not trust each other: a host that has been tampered with must
not be able to make drbot run a command on itself or on the other hosts. So every value a restore
reads from a host (a backup file name, ETCD_NAME, a peer IP, the etcdctl image, the restore uuid, a
checksum, a VIP) must match the pattern of what it names before it goes near a command, and is still
quoted with shlex.quote where it is used. A value that does not match stops the run with a message that
names the host, where the value came from, the value (shortened, control characters escaped) and the
pattern expected. Pure functions: text in, text out or UntrustedValue.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

SHOWN = 60
"""How much of a refused value a message shows: enough to recognise it, not a page of an attacker's text."""


@dataclass(frozen=True)
class Pattern:
    """What a value must look like: a regular expression matched in full, plus an optional extra test."""

    expected: str
    """How the pattern reads in a message, e.g. "a backup file name: snapshot_YYYY-MM-DD_HHMMSS.db"."""
    regex: re.Pattern[str]
    extra: Callable[[str], bool] | None = None

    def matches(self, value: str) -> bool:
        # fullmatch: `$` would accept a trailing newline; re.ASCII: `\w`/`\d` would accept any script.
        return self.regex.fullmatch(value) is not None and (self.extra is None or self.extra(value))


class UntrustedValue(ValueError):
    """A value read from a host does not match its pattern; str() is the sentence an operator reads."""

    def __init__(self, what: str, value: str, source: str, pattern: Pattern) -> None:
        super().__init__(f"{what} {shown(value)} (from {source}) is not {pattern.expected}")
        self.what = what
        self.value = value
        self.source = source
        self.pattern = pattern


def shown(value: str) -> str:
    """A refused value as a message shows it: quoted, control characters escaped, cut after SHOWN."""
    cut = value if len(value) <= SHOWN else f"{value[:SHOWN]}…"
    return repr(cut)


def refusal(value: str, pattern: Pattern, *, what: str, source: str) -> UntrustedValue | None:
    """Why the value cannot be used (naming what it is and where it came from), or None when it matches."""
    return None if pattern.matches(value) else UntrustedValue(what, value, source, pattern)


def checked(value: str, pattern: Pattern, *, what: str, source: str) -> str:
    """The value itself when it matches the pattern; otherwise UntrustedValue naming what and where."""
    error = refusal(value, pattern, what=what, source=source)
    if error is not None:
        raise error
    return value


def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.ASCII)


STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{6}(?:__POSSIBLY_DIRTY__)?"
"""cluster-backup.sh's time stamp, `date "+%F_%H%M%S"`, marked when the backup was forced (`--force`)."""
FORCED = "(__POSSIBLY_DIRTY__ before the extension after a forced backup)"
SNAPSHOT_NAME = Pattern(
    f"a snapshot file name: snapshot_YYYY-MM-DD_HHMMSS.db {FORCED}", _compile(rf"snapshot_{STAMP}\.db")
)
RESOURCES_NAME = Pattern(
    f"a static-pod resources file name: static_kuberesources_YYYY-MM-DD_HHMMSS.tar.gz {FORCED}",
    _compile(rf"static_kuberesources_{STAMP}\.tar\.gz"),
)
BACKUP_INFO_NAME = Pattern(
    f"a backup information file name: backup-info_YYYY-MM-DD_HHMMSS.json {FORCED}",
    _compile(rf"backup-info_{STAMP}\.json"),
)
BACKUP_FILES = (
    ("snapshot", SNAPSHOT_NAME),
    ("static_kuberesources", RESOURCES_NAME),
    ("backup-info_", BACKUP_INFO_NAME),
)
"""The files of a backup by the prefix each is looked for with, and its pattern. cluster-restore.sh takes
`snapshot*.db` and `static_kuberesources*.tar.gz` (no underscore needed), so those prefixes count."""

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
DNS_1123_NAME = Pattern(
    "a DNS-1123 name: lowercase letters, digits, '-' and '.', labels of at most 63 and 253 characters in all",
    _compile(rf"{_LABEL}(?:\.{_LABEL})*"),
    extra=lambda value: len(value) <= 253,
)
"""ETCD_NAME: the node name, which Kubernetes keeps to a DNS-1123 subdomain."""


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    """An extra test: the value is one the standard library parses (the regex has kept out the rest)."""

    def test(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return test


_ip = _parses(ipaddress.ip_address)
IP_ADDRESS = Pattern(
    "an IPv4 or IPv6 address (digits, a-f, '.' and ':'; no zone)", _compile(r"[0-9A-Fa-f.:]{2,45}"), extra=_ip
)
"""The character class keeps out what ipaddress would let through: an IPv6 zone (`fe80::1%anything`)."""


IP_INTERFACE = Pattern(
    "an address with its prefix length, e.g. 10.0.0.5/24",
    _compile(r"[0-9A-Fa-f.:]{2,45}/[0-9]{1,3}"),
    extra=_parses(ipaddress.ip_interface),
)
DEVICE = Pattern(
    "a network device name: letters, digits, '_', '.', '-', '@', at most 31 characters",
    _compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,30}"),
)
"""`ip -o address` names the device (IFNAMSIZ: 15), with `@peer` for some links."""
PEER_URL = Pattern(
    "an etcd peer URL: https://IP:2380 (https://[IPv6]:2380)",
    _compile(r"https://(?:[0-9.]{7,15}|\[[0-9A-Fa-f:.]{2,45}\]):2380"),
    extra=lambda value: _ip(value.removeprefix("https://").removesuffix(":2380").strip("[]")),
)
UUID = Pattern(
    "an RFC 4122 UUID: 8-4-4-4-12 lowercase hexadecimal digits",
    _compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
)
SHA256 = Pattern("a sha256 checksum: 64 lowercase hexadecimal digits", _compile(r"[0-9a-f]{64}"))
MEMBER_ID = Pattern("an etcd id: 1 to 16 lowercase hexadecimal digits", _compile(r"[0-9a-f]{1,16}"))

_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = Pattern(
    "an image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path, no options",
    _compile(
        rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]{{1,5}})?/)?{_PATH_PART}(?:/{_PATH_PART})*"
        r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
    ),
    extra=lambda value: len(value) <= 512,
)
"""The grammar of distribution/reference (the one podman parses): it starts with a letter or digit, so it
can never be read as an option, and holds nothing a shell treats specially."""


def backup_file_problems(names: list[str], directory: str) -> list[UntrustedValue]:
    """The names in a backup directory listing that start like a backup file but are not one.

    cluster-restore.sh takes the newest `snapshot_*.db` and `static_kuberesources_*.tar.gz` of the
    directory by itself, so any such file counts, not only the one drbot would pick."""
    return [
        error
        for name in names
        for prefix, pattern in BACKUP_FILES
        if name.startswith(prefix)
        and (error := refusal(name, pattern, what="the file name", source=directory))
    ]
