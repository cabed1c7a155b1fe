"""Remove secrets from command output before it reaches Slack, the timeline or a log.

DR commands handle kubeconfigs, etcd certificates, S3 credentials and proxy URLs; any of them can
end up on stdout (a `cat`, a `set -x`, an error message echoing its input). The patterns target
the shapes secrets come in, so ordinary output (crictl tables, etcd member ids, sha256 digests in
`etcdctl snapshot status`) passes through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable

REDACTED = "[REDACTED]"

# A PEM block; the END line is optional because output capped or cut by a timeout can lose it.
_PEM = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----.*?(?:-----END (?P=label)-----|\Z)",
    re.DOTALL,
)
# The tail of a PEM block whose BEGIN line was dropped when the output was capped from the front.
_PEM_TAIL = re.compile(
    r"\A(?:\s|\\n)*(?:[A-Za-z0-9+/=]{16,}(?:\s|\\n)+)+-----END (?P<label>[A-Z0-9 ]+)-----",
)
# "-----BEGIN" base64-encoded, as in Secret data (`tls.key: LS0tLS1CRUdJTi...`) and kubeconfigs.
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJT[A-Za-z0-9+/]*={0,2}")
_KUBECONFIG_DATA = re.compile(
    r"(?P<key>\b(?:client-key-data|client-certificate-data|certificate-authority-data)"
    r"[\"']?[ \t]*[:=][ \t]*)[\"']?[A-Za-z0-9+/=._-]+[\"']?",
)
_TOKEN_FIELD = re.compile(
    r"(?P<key>(?:^|(?<=[\s{,\"'-]))[\"']?(?:token|id-token|refresh-token|access-token|"
    r"accessToken|idToken|refreshToken|SessionToken|SecretAccessKey)[\"']?[ \t]*[:=][ \t]*)"
    r"(?P<value>\"[^\"\n]+\"|'[^'\n]+'|[^\s,}\"']+)",
    re.MULTILINE,
)
_BEARER = re.compile(r"(?P<key>\bBearer[ \t]+)[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE)
_BASIC_AUTH = re.compile(r"(?P<key>\bAuthorization:[ \t]*Basic[ \t]+)[A-Za-z0-9+/=]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_SLACK_TOKEN = re.compile(r"\b(?:xox[abprse]|xapp)-[A-Za-z0-9-]{8,}")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_AWS_SECRET = re.compile(
    r"(?P<key>\b(?:aws_secret_access_key|aws_session_token|aws_security_token)[\"']?[ \t]*[:=][ \t]*)"
    r"[\"']?[A-Za-z0-9/+=]{16,}[\"']?",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<key>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)")
_PASSWORD_FIELD = re.compile(
    r"(?P<key>\b(?:password|passwd|passphrase|secret|client[_-]secret|api[_-]?key)[\"']?[ \t]*[:=][ \t]*)"
    r"(?P<value>\"[^\"\n]+\"|'[^'\n]+'|[^\s,;&}\"']+)",
    re.IGNORECASE,
)


def _pem(match: re.Match[str]) -> str:
    label = match.group("label")
    if "PRIVATE KEY" in label:
        return "[REDACTED PRIVATE KEY]"
    if "CERTIFICATE" in label:
        return "[REDACTED CERTIFICATE]"
    return match.group(0)


def _keep_key(match: re.Match[str]) -> str:
    return match.group("key") + REDACTED


def _fixed(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: text


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_PEM, _pem),
    (_PEM_TAIL, _pem),
    (_KUBECONFIG_DATA, _keep_key),
    (_BASE64_PEM, _fixed("[REDACTED BASE64 PEM]")),
    (_AWS_SECRET, _keep_key),
    (_TOKEN_FIELD, _keep_key),
    (_BEARER, _keep_key),
    (_BASIC_AUTH, _keep_key),
    (_JWT, _fixed("[REDACTED JWT]")),
    (_SLACK_TOKEN, _fixed("[REDACTED SLACK TOKEN]")),
    (_AWS_KEY_ID, _fixed("[REDACTED AWS KEY ID]")),
    (_URL_PASSWORD, _keep_key),
    (_PASSWORD_FIELD, _keep_key),
)


def redact(text: str) -> str:
    """Return `text` with private keys, certificates, tokens and passwords replaced by markers."""
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    return text
