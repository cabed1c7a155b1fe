"""The one redactor: everything drbot shows or keeps goes through it before it leaves the process.

Slack messages and files (the outbox), the incident timeline, `/dr` replies, logs and the exception
texts shown to people all use `redact()` (or `redact_value()` for nested data). DR commands handle
kubeconfigs, etcd certificates, pull secrets, S3 credentials and proxy URLs; any of them can end up on
stdout (a `cat`, a `set -x`, an error message echoing its input). Three kinds of rule:

- shapes: PEM and PuTTY private keys, certificates, JWTs, Slack/GitHub/AWS/OpenShift tokens, bearer
  and basic credentials, passwords in URLs, pull secrets, kubeconfig client data, a Secret's `data:`;
- keys: the value of any key that names a secret (`MYSQL_ROOT_PASSWORD=`, `"Token":`, `X-Auth-Token:`,
  `?access_token=`, `--token X`), case-insensitive, with `_`, `-` and `.` as word boundaries;
- values: the secrets drbot itself holds (Slack tokens, the Redis password, AWS keys), registered at
  start-up by `drbot` (drbot/cli.py), wherever they appear.

Ordinary DR output (crictl tables, etcd member ids, `etcdctl snapshot status` hashes, sha256 digests,
resourceVersions, "token" as a word in prose) passes through untouched. Redaction runs on every command
output (up to 1 MiB), so it stays linear: each pattern starts with literals (the engine jumps from one
candidate to the next) and has no nested repetition to backtrack through; keys are found by one literal
alternation and checked where they stand (tests/unit/test_redact.py prints the time for 1 MiB).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import string
import sys
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8
"""Registered values shorter than this would match ordinary words; they are refused with a warning."""
SECRET_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
"""Environment variables whose values drbot holds as secrets (with the password in REDIS_URL)."""

Replace = Callable[[re.Match[str]], str]
Rule = Callable[[str], str]

# --- shapes ----------------------------------------------------------------------------------------------
# Each pattern starts with a literal where it can, so the engine jumps from candidate to candidate
# instead of trying every position.

# A PEM block; the END line is optional because output capped or cut by a timeout can lose it.
_PEM = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----.*?(?:-----END (?P=label)-----|\Z)",
    re.DOTALL,
)
# The tail of a PEM block whose BEGIN line was dropped when the output was capped from the front.
_PEM_TAIL = re.compile(
    r"(?:\s|\\n)*(?:[A-Za-z0-9+/=]{16,}(?:\s|\\n)+)+-----END (?P<label>[A-Z0-9 ]+)-----",
)
# A PuTTY key file (.ppk), through its Private-MAC line or, when cut short, to the end.
_PUTTY = re.compile(r"PuTTY-User-Key-File-[0-9]+:.*?(?:Private-MAC:[ \t]*[0-9A-Fa-f]*|\Z)", re.DOTALL)
# Its private lines alone, when the output was capped from the front.
_B64_LINE = r"[A-Za-z0-9+/=]+(?![^\r\n])"
_PUTTY_PRIVATE = re.compile(
    rf"(?P<key>Private-Lines:[ \t]*[0-9]+[ \t]*\r?\n){_B64_LINE}(?:\r?\n{_B64_LINE})*"
)
# "-----BEGIN" base64-encoded, as in Secret data (`tls.key: LS0tLS1CRUdJTi...`) and kubeconfigs.
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJT[A-Za-z0-9+/]*={0,2}")
_KUBECONFIG_DATA = re.compile(
    r"(?P<key>(?:client-key-data|client-certificate-data|certificate-authority-data)"
    r"[\"']?[ \t]*[:=][ \t]*)[\"']?[A-Za-z0-9+/=._-]+[\"']?",
)
# A Secret's `data:` in YAML (the lines indented under it) and in JSON (the object after it).
_DATA_YAML = re.compile(r"\n(?P<indent>[ \t]*)data:[ \t]*\r?\n(?:(?P=indent)[ \t]+\S[^\n]*(?:\n|\Z))+")
_DATA_YAML_ENTRY = re.compile(
    r"^(?P<key>[ \t]+[\"']?[^\s:\"']+[\"']?:[ \t]+)(?P<q>[\"']?)(?P<value>[A-Za-z0-9+/]+={0,2})(?P=q)"
    r"(?=[ \t]*\r?$)",
    re.MULTILINE,
)
_DATA_JSON = re.compile(r"\"data\"[ \t\r\n]*:[ \t\r\n]*\{[^{}]*\}")
_DATA_JSON_ENTRY = re.compile(r"(?P<key>\"[^\"\n]+\"[ \t]*:[ \t]*)(?P<q>\")(?P<value>[A-Za-z0-9+/]+={0,2})\"")


def _docker_config_prefix(opening: str) -> str:
    """The base64 characters that `opening` fixes whatever follows it (its whole 3-byte groups)."""
    raw = opening.encode()
    return base64.b64encode(raw[: len(raw) // 3 * 3]).decode()


# A pull secret (.dockerconfigjson) base64-encoded, compact or as `oc` and `podman` indent it.
_DOCKER_CONFIG_B64 = re.compile(
    "(?:"
    + "|".join(
        re.escape(_docker_config_prefix(opening))
        for opening in ('{"auths":', '{ "auths":', '{\n  "auths":', '{\n    "auths":', '{\n\t"auths":')
    )
    + ")[A-Za-z0-9+/]*={0,2}"
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_SLACK_TOKEN = re.compile(r"(?:xox[abprse]|xapp)-[A-Za-z0-9-]{8,}")
_GITHUB_TOKEN = re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")
_AWS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}\b")
# OpenShift OAuth access tokens (`oc whoami -t`, `oc login --token`).
_OPENSHIFT_TOKEN = re.compile(r"sha256~[A-Za-z0-9_-]{20,}")
# The scheme names are case-insensitive; the three spellings tools use are listed so each pattern starts
# with literals.
_BEARER = re.compile(r"(?P<key>(?:Bearer|bearer|BEARER)[ \t]+)[A-Za-z0-9._~+/=-]{16,}")
_BASIC_AUTH = re.compile(
    r"(?P<key>(?:Authorization|authorization|AUTHORIZATION):[ \t]*(?:Basic|basic|BASIC)[ \t]+)[A-Za-z0-9+/=]+"
)
# scheme://[user]:password@host, the user often empty (redis://:PASSWORD@host).
_URL_PASSWORD = re.compile(r"(?P<key>://[^/\s:@]*:)[^\s/]+(?=@)")


def _pem(match: re.Match[str]) -> str:
    label = match.group("label")
    if "PRIVATE KEY" in label:
        return "[REDACTED PRIVATE KEY]"
    if "CERTIFICATE" in label:
        return "[REDACTED CERTIFICATE]"
    return match.group(0)


def _keep_key(match: re.Match[str]) -> str:
    return match.group("key") + REDACTED


def _fixed(text: str) -> Replace:
    return lambda _match: text


def _looks_base64(value: str) -> bool:
    """A Secret's data value, told apart from plain words in a ConfigMap's `data:` (`mode: Disabled`)."""
    if len(value) < 8 or len(value) % 4:
        return False
    return len(value) >= 16 or value.endswith("=") or any(c.isdigit() or c in "+/" for c in value)


def _data_entry(match: re.Match[str]) -> str:
    if not _looks_base64(match.group("value")):
        return match.group(0)
    return f"{match.group('key')}{match.group('q')}{REDACTED}{match.group('q')}"


def _data_block(entry: re.Pattern[str]) -> Replace:
    return lambda match: entry.sub(_data_entry, match.group(0))


_DATA_YAML_BLOCK = _data_block(_DATA_YAML_ENTRY)


def _sub(pattern: re.Pattern[str], replace: Replace) -> Rule:
    return lambda text: pattern.sub(replace, text)


def _data_yaml(text: str) -> str:
    """A `data:` key starts a line; the pattern finds line starts by their newline, so one is put first."""
    if "data:" not in text:
        return text
    return _DATA_YAML.sub(_DATA_YAML_BLOCK, "\n" + text)[1:]


def _pem_tail(text: str) -> str:
    """Only the start of an output can hold a tail whose BEGIN line was capped away."""
    match = _PEM_TAIL.match(text) if "-----END " in text else None
    return text if match is None else _pem(match) + text[match.end() :]


# --- keys ------------------------------------------------------------------------------------------------
# A key whose last word names a secret: `_`, `-`, `.` (and, for words such as token, anything) may come
# before the word, but nothing may follow it, so MYSQL_ROOT_PASSWORD, db_password, X-Auth-Token,
# accessToken and secret_key are keys while PASSWORD_FILE, tokenSecretRef and secretName are not.
# The words are found in the lowercased text with one literal alternation; each hit is then checked and
# its value matched in place, so the cost follows the number of hits, not the length of the text.

_SECRET_WORDS = {
    "key": r"(?:api|access|private|secret)[_.-]?key",
    "passw": r"password|passwd",
    "passphrase": "passphrase",
    "secret": "secret",
    "token": "token",
    "auth": "auth",
    "docker": "dockerconfigjson|dockercfg",
}
"""The secret words (lowercase) by a literal each needs. Compound words come first: secret_key is one key
word, not `secret` followed by more of the key."""
_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_MAX_KEY_LENGTH = 128
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# What a value can be: a marker an earlier rule left, a quoted string (its closing quote may have been
# cut off with the rest of the line), or a bare word or the rest of the line.
_MARKER = r"\[REDACTED[A-Z0-9 ]*\]"
_QUOTED = r"\"(?:[^\"\\\n]|\\.)*\"?|'[^'\n]*'?"
_WORD_VALUE = rf"{_MARKER}|{_QUOTED}|[^\s\"'&;]+"
_FLAG_VALUE = rf"{_MARKER}|{_QUOTED}|[^\s\"'&;-][^\s\"'&;]*"
_JSON_VALUE = rf"{_MARKER}|{_QUOTED}|[^\s,{{}}\[\]\"'][^\s,}}\]]*"
_LINE_VALUE = rf"{_MARKER}|{_QUOTED}|[^\s\"'][^\n\"']*"
# After the key: "key": value (JSON, a Python dict), KEY=value (environment, INI, query strings,
# --flag=value), --flag value, `name: KUBE_TOKEN` + `value: ...` (a pod's env), key: value (YAML,
# HTTP headers; to the end of the line).
_AFTER_QUOTED_KEY = re.compile(rf"[\"'][ \t]*:[ \t]*(?P<value>{_JSON_VALUE})")
_AFTER_ASSIGNED_KEY = re.compile(rf"[\"']?[ \t]*=[ \t]*(?P<value>{_WORD_VALUE})")
_AFTER_FLAG = re.compile(rf"[ \t]+(?P<value>{_FLAG_VALUE})")
_BEFORE_ENV_NAME = re.compile(r"name[\"']?[ \t]*:[ \t]*[\"']?\Z", re.IGNORECASE)
_AFTER_ENV_NAME = re.compile(
    rf"[\"']?[ \t]*(?:,[ \t]*|\r?\n[ \t]*)[\"']?value[\"']?[ \t]*:[ \t]*(?P<value>{_LINE_VALUE})",
    re.IGNORECASE,
)
_AFTER_FIELD_KEY = re.compile(rf"[ \t]*:[ \t]*(?P<value>{_LINE_VALUE})")


def _redact_keys(text: str) -> str:
    low = text.lower()
    if len(low) != len(text):  # a few non-ASCII letters grow when lowered; offsets must stay aligned
        low = text.translate(_ASCII_LOWER)
    present = tuple(word for literal, word in _SECRET_WORDS.items() if literal in low)
    if not present:
        return text
    pieces: list[str] = []
    done = 0
    for hit in _keys_pattern(present).finditer(low):
        if hit.start() < done:
            continue
        value = _secret_value(text, low, hit.start(), hit.end())
        if value is None:
            continue
        pieces += (text[done : value.start("value")], _masked(value.group("value")))
        done = value.end("value")
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


@functools.cache
def _keys_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """The secret words a text holds (most hold few or none) where they end a key (PASSWORD_FILE and
    tokenSecretRef go on after the word) that is being set: followed by a separator, or a --flag
    followed by its value. Prose that merely uses the word never reaches Python code."""
    word = f"(?:{'|'.join(words)})(?![a-z0-9_.-])"
    flag_start = "-(?<![a-z0-9_.-]-)"  # the literal first, so the engine can jump to candidates
    return re.compile(rf"{word}(?=[\"']?[ \t]*[=:,\r\n])|{flag_start}[a-z0-9_.-]*?{word}(?=[ \t]+[^\s-])")


def _secret_value(text: str, low: str, hit_start: int, word_end: int) -> re.Match[str] | None:
    """The value set for the key whose secret word ends at `word_end`, if any."""
    if low.startswith("auth", word_end - 4) and word_end > 4 and low[word_end - 5].isalnum():
        return None  # oauth, Xauth: another word
    start = _key_start(text, hit_start)
    if start is None:
        return None
    follower = _next_visible(text, word_end)
    if follower == "=":
        return _AFTER_ASSIGNED_KEY.match(text, word_end)
    if follower == ":":
        if start and text[start - 1] in "\"'" and text.startswith(text[start - 1], word_end):
            return _AFTER_QUOTED_KEY.match(text, word_end)
        found = _AFTER_FIELD_KEY.match(text, word_end)
        return None if found is None or _in_prose(text, start, word_end, found.group("value")) else found
    if follower in (",", "\r", "\n"):
        named = _BEFORE_ENV_NAME.search(text, max(0, start - 32), start)
        return _AFTER_ENV_NAME.match(text, word_end) if named else None
    return _AFTER_FLAG.match(text, word_end)


def _next_visible(text: str, position: int) -> str:
    """The first character at `position` or after, past a closing quote and blanks ("" at the end)."""
    if text.startswith(('"', "'"), position):
        position += 1
    while position < len(text) and text[position] in " \t":
        position += 1
    return text[position] if position < len(text) else ""


def _key_start(text: str, word_start: int) -> int | None:
    """Where the key around a secret word starts; None for a run of key characters too long to be a key."""
    start = word_start
    limit = max(0, word_start - _MAX_KEY_LENGTH)
    while start > limit and text[start - 1] in _KEY_CHARS:
        start -= 1
    if start == limit and start and text[start - 1] in _KEY_CHARS:
        return None
    return start


def _in_prose(text: str, start: int, end: int, value: str) -> bool:
    """Whether the key is a word in a sentence ("invalid token: the server said no"), not a key."""
    after_a_word = start >= 2 and text[start - 1] == " " and text[start - 2].isalnum()
    return after_a_word and text[start:end].isalpha() and " " in value.strip()


def _masked(value: str) -> str:
    """The value replaced, keeping its quotes (JSON stays JSON) and trailing blanks."""
    if value.startswith("[REDACTED"):
        return value
    stripped = value.rstrip()
    quote = stripped[0] if stripped[0] in "\"'" else ""
    closing = quote if len(stripped) > 1 and stripped.endswith(quote) else ""
    return f"{quote}{REDACTED}{closing}{value[len(stripped) :]}"


_RULES: tuple[Rule, ...] = (
    _sub(_PEM, _pem),
    _pem_tail,
    _sub(_PUTTY, _fixed("[REDACTED PRIVATE KEY]")),
    _sub(_PUTTY_PRIVATE, _keep_key),
    _sub(_KUBECONFIG_DATA, _keep_key),
    _sub(_BASE64_PEM, _fixed("[REDACTED BASE64 PEM]")),
    _sub(_DOCKER_CONFIG_B64, _fixed("[REDACTED PULL SECRET]")),
    _data_yaml,
    _sub(_DATA_JSON, _data_block(_DATA_JSON_ENTRY)),
    _sub(_JWT, _fixed("[REDACTED JWT]")),
    _sub(_SLACK_TOKEN, _fixed("[REDACTED SLACK TOKEN]")),
    _sub(_GITHUB_TOKEN, _fixed("[REDACTED GITHUB TOKEN]")),
    _sub(_AWS_KEY_ID, _fixed("[REDACTED AWS KEY ID]")),
    _sub(_OPENSHIFT_TOKEN, _fixed("[REDACTED OPENSHIFT TOKEN]")),
    _sub(_BEARER, _keep_key),
    _sub(_BASIC_AUTH, _keep_key),
    _sub(_URL_PASSWORD, _keep_key),
    _redact_keys,
)

# --- values drbot holds ----------------------------------------------------------------------------------


class _Known:
    """The exact secret strings registered at start-up, as one alternation (longest first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        with self.lock:
            self.values.add(value)
            ordered = sorted(self.values, key=len, reverse=True)
            self.pattern = re.compile("|".join(map(re.escape, ordered)))


_known = _Known()


def register_secret(value: str) -> bool:
    """Redact `value` wherever it appears from now on. False, and nothing registered, when it is shorter
    than MIN_SECRET_LENGTH: it would match ordinary words."""
    if len(value) < MIN_SECRET_LENGTH:
        return False
    _known.add(value)
    return True


def register_environment_secrets(environ: Mapping[str, str]) -> None:
    """Register the secrets drbot holds: SECRET_VARIABLES and the password in REDIS_URL (as written and
    percent-decoded). One too short to register is named in a warning; the rules may still catch it."""
    found = {name: environ.get(name, "") for name in SECRET_VARIABLES}
    try:
        password = urlsplit(environ.get("REDIS_URL", "")).password or ""
    except ValueError:  # not a URL at all; drbot says so when it connects
        password = ""
    found["the password in REDIS_URL"] = password
    if unquote(password) != password:
        found["the password in REDIS_URL, percent-decoded"] = unquote(password)
    for name, value in found.items():
        if value and not register_secret(value):
            log.warning(
                "%s is shorter than %d characters, too short to be redacted wherever it appears; "
                "use a longer one",
                name,
                MIN_SECRET_LENGTH,
            )


# --- the redactor ----------------------------------------------------------------------------------------


def redact(text: str) -> str:
    """Return `text` with private keys, certificates, tokens, passwords and drbot's own secrets replaced
    by markers."""
    if not text:
        return text
    known = _known.pattern
    if known is not None:
        text = known.sub(REDACTED, text)
    for rule in _RULES:
        text = rule(text)
    return text


def redact_value(value: Any) -> Any:
    """`value` with every string in it redacted, however deeply nested in dicts, lists and tuples
    (message arguments that are messages themselves, Slack payloads)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_value(item) for item in value)
    return value


# --- logs and uncaught exceptions ------------------------------------------------------------------------

_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Redacts a log record in place: its message (arguments merged in) and its exception and stack text.

    A record with nothing to redact keeps its arguments, for formatters that read them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = _message(record)
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # a malformed logging call: keep what it said, redacted
        return f"{record.msg} {record.args!r}"


class _RedactingFactory:
    """Makes log records through the previous factory and redacts each one as it is made."""

    def __init__(self, make: Callable[..., logging.LogRecord]) -> None:
        self.make = make
        self.redacting = RedactingFilter()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make(*args, **kwargs)
        self.redacting.filter(record)
        return record


def install_log_redaction() -> None:
    """Redact every log record this process makes, and the tracebacks of exceptions nobody caught.

    The filter runs where records are made (a record factory), not on the root logger's handler:
    handlers that libraries add later, such as uvicorn's, which keep their records from the root
    logger, must not write secrets either. Calling it again changes nothing."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """Python would print the traceback raw to stderr (the log, in a pod); log it redacted instead."""
    logging.getLogger("drbot").critical("uncaught exception", exc_info=(kind, error, trace))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("drbot").critical(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
