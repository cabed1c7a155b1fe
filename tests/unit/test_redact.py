import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.redaction_canaries import CANARIES, Canary
from workers.redact import (
    RedactingFilter,
    redact,
    redact_value,
    register_environment_secrets,
    register_secret,
)

PRIVATE_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDxbGZ0dGVzdGtleWRhdGFmb3JkcmJvdHJlZGFjdGlvbnRlc3QAAAAJZHJi
-----END OPENSSH PRIVATE KEY-----"""

RSA_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw
7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFc
-----END RSA PRIVATE KEY-----"""

CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTES
MBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYDVQQDExlC
-----END CERTIFICATE-----"""

CSR = """-----BEGIN CERTIFICATE REQUEST-----
MIICvDCCAaQCAQAwdzELMAkGA1UEBhMCVVMxDTALBgNVBAgMBFV0YWgxDzANBgNVBAcM
-----END CERTIFICATE REQUEST-----"""

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjFfZmFrZSJ9."
    "eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lzdGVtOnNhIn0."
    "c2lnbmF0dXJlLWJ5dGVzLWhlcmUtZm9yLXRoZS10ZXN0"
)

KUBECONFIG = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSURkekNDQWwrZ0F3SUJBZ0lF
    server: https://api.prod-east.example.com:6443
  name: prod-east
users:
- name: admin
  user:
    client-certificate-data: Q0VSVElGSUNBVEUtREFUQS1OT1QtUEVNLUJVVC1TVElMTC1TRUNSRVQ=
    client-key-data: S0VZLURBVEEtTk9ULVBFTS1CVVQtU1RJTEwtU0VDUkVU
- name: robot
  user:
    token: sha256~Xk3f9QWertyUIOPasdfGHJKLzxcvbnm1234567
- name: sa
  user:
    token: {JWT}
"""


def test_private_keys_are_replaced_whole() -> None:
    for key in (PRIVATE_KEY, RSA_KEY):
        out = redact(f"before\n{key}\nafter\n")
        assert out == "before\n[REDACTED PRIVATE KEY]\nafter\n"


def test_certificates_and_csrs_are_replaced() -> None:
    out = redact(f"{CERTIFICATE}\n{CSR}\n")
    assert out == "[REDACTED CERTIFICATE]\n[REDACTED CERTIFICATE]\n"


def test_pem_cut_by_a_timeout_is_still_redacted() -> None:
    cut = PRIVATE_KEY.rsplit("\n", 2)[0]
    assert redact(f"$ cat key\n{cut}") == "$ cat key\n[REDACTED PRIVATE KEY]"


def test_pem_whose_beginning_was_capped_away_is_redacted() -> None:
    tail = RSA_KEY.split("\n", 1)[1]
    assert redact(f"{tail}\nnext line\n") == "[REDACTED PRIVATE KEY]\nnext line\n"


def test_pem_inside_json_with_escaped_newlines() -> None:
    text = '{"tls.key": "' + RSA_KEY.replace("\n", "\\n") + '\\n"}'
    assert redact(text) == '{"tls.key": "[REDACTED PRIVATE KEY]\\n"}'


def test_public_keys_are_left_alone() -> None:
    public = (
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
        "-----END PUBLIC KEY-----"
    )
    assert redact(public) == public


def test_kubeconfig_secrets() -> None:
    out = redact(KUBECONFIG)
    assert "LS0tLS1C" not in out
    assert "Q0VSVElG" not in out
    assert "S0VZLURB" not in out
    assert "sha256~Xk3f" not in out
    assert "eyJ" not in out
    assert "    certificate-authority-data: [REDACTED]\n" in out
    assert "    client-certificate-data: [REDACTED]\n" in out
    assert "    client-key-data: [REDACTED]\n" in out
    assert "    token: [REDACTED OPENSHIFT TOKEN]\n" in out
    assert "    token: [REDACTED JWT]\n" in out
    assert "server: https://api.prod-east.example.com:6443" in out


def test_base64_pem_in_secret_yaml() -> None:
    text = (
        "data:\n"
        "  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n"
        "  tls.key: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==\n"
    )
    assert redact(text) == "data:\n  tls.crt: [REDACTED BASE64 PEM]\n  tls.key: [REDACTED BASE64 PEM]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdef0123456789abcdef", "Authorization: Bearer [REDACTED]"),
        ("curl -H 'Authorization: Basic dXNlcjpwYXNz' x", "curl -H 'Authorization: Basic [REDACTED]' x"),
        (f"jwt {JWT} end", "jwt [REDACTED JWT] end"),
        ("oc login --token=sha256~abcdefghijklmnop", "oc login --token=[REDACTED]"),
        ('{"token": "abc123def456", "kind": "x"}', '{"token": "[REDACTED]", "kind": "x"}'),
        ("SLACK_BOT_TOKEN=xoxb-1234567890-0987654321-AbCdEfGh", "SLACK_BOT_TOKEN=[REDACTED SLACK TOKEN]"),
        ("app token xapp-1-A0123456789-1234567890123-abcdef", "app token [REDACTED SLACK TOKEN]"),
        ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID=[REDACTED AWS KEY ID]"),
        ("key ASIAXYZ1234567890ABC used", "key [REDACTED AWS KEY ID] used"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED]",
        ),
        (
            "export AWS_SECRET_ACCESS_KEY='wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
            "export AWS_SECRET_ACCESS_KEY='[REDACTED]'",
        ),
        (
            "AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH",
            "AWS_SESSION_TOKEN=[REDACTED]",
        ),
        ('"SessionToken": "IQoJb3JpZ2luX2VjEJr//wEaCXVz",', '"SessionToken": "[REDACTED]",'),
        ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG",', '"SecretAccessKey": "[REDACTED]",'),
        (
            "HTTPS_PROXY=http://proxyuser:s3cr3t@proxy.corp:3128",
            "HTTPS_PROXY=http://proxyuser:[REDACTED]@proxy.corp:3128",
        ),
        ("mysql://root:hunter2@db/x", "mysql://root:[REDACTED]@db/x"),
        ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
        ("  password: 'correct horse'", "  password: '[REDACTED]'"),
        ("client_secret=abc&x=1", "client_secret=[REDACTED]&x=1"),
    ],
)
def test_tokens_and_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


CRICTL = """CONTAINER           IMAGE                                                              CREATED             STATE               NAME                ATTEMPT             POD ID              POD
3ad4f1b2c5e7d       quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:9d3b2a1f0e8c7d6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a   2 minutes ago       Running             etcd                0                   8f2e1d0c9b8a7       etcd-master-0
"""  # noqa: E501

ETCD_MEMBERS = """+------------------+---------+----------+--------------------------+--------------------------+------------+
|        ID        | STATUS  |   NAME   |        PEER ADDRS        |       CLIENT ADDRS       | IS LEARNER |
+------------------+---------+----------+--------------------------+--------------------------+------------+
| 8e9e05c52164694d | started | master-0 | https://10.0.0.10:2380   | https://10.0.0.10:2379   |      false |
| 91bc3c398fb3c146 | started | master-1 | https://10.0.0.11:2380   | https://10.0.0.11:2379   |      false |
+------------------+---------+----------+--------------------------+--------------------------+------------+
"""  # noqa: E501

SNAPSHOT_STATUS = """+----------+----------+------------+------------+
|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |
+----------+----------+------------+------------+
| fe01cf57 |    84736 |       1824 |      94 MB |
+----------+----------+------------+------------+
{"hash":4261531479,"revision":84736,"totalKey":1824,"totalSize":98566144}
sha256sum: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae  snapshot_2026-11-29_105300.db
"""

ORDINARY = [
    CRICTL,
    ETCD_MEMBERS,
    SNAPSHOT_STATUS,
    "https://10.0.0.10:2379 is healthy: successfully committed proposal: took = 9.7ms",
    "NAME       STATUS   ROLES                  AGE   VERSION\n"
    "master-0   Ready    control-plane,master   42d   v1.29.5+29c3bfe",
    "sudo: a password is required",
    "Password:",
    "secret/etcd-all-certs created",
    "  secretName: etcd-all-certs\n  tokenSecretRef: x",
    "ETCDCTL_KEY=/etc/kubernetes/static-pod-certs/secrets/etcd-all-certs/etcd-peer-master-0.key",
    "serviceaccount-token   kubernetes.io/service-account-token   4   10d",
    "uuid 3f2b8c1e-7d4a-4e9b-8c2f-1a2b3c4d5e6f and node-1.example.com:6443",
    "Bearer tokens are used here",
    "error: invalid token: the server has asked for the client to provide credentials",
    "the service account token is mounted at /var/run/secrets/kubernetes.io/serviceaccount",
    "Mountable secrets:   builder-dockercfg-x2l8p\nTokens:              builder-token-9vj2h",
    "NAME                      TYPE                             DATA   AGE\n"
    "builder-dockercfg-x2l8p   kubernetes.io/dockercfg          1      42d\n"
    "pull-secret               kubernetes.io/dockerconfigjson   1      42d",
    '  resourceVersion: "84736"\n  uid: 3f2b8c1e-7d4a-4e9b-8c2f-1a2b3c4d5e6f',
    '{"metadata":{"name":"etcd-all-certs","resourceVersion":"84736"},"type":"kubernetes.io/tls"}',
    "image: quay.io/openshift-release-dev/ocp-release@sha256:"
    "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    # the openshift-etcd/etcd-endpoints ConfigMap: member ids and addresses under data:
    'data:\n  8e9e05c52164694d: 10.0.0.10\n  91bc3c398fb3c146: 10.0.0.11\n  mode: Disabled\n  revision: "7"',
    "PASSWORD_FILE=/run/secrets/db-password\ntoken_type: Bearer\nsecretName: etcd-all-certs",
    "podman login --password-stdin quay.io",
    "oauth-openshift-6c9f8d7b5-x2l8p   1/1   Running\nauthentication   4.14.38   True   False   False   42d",
    "key: /etc/drbot/ssh/id_ed25519\nknown_hosts: /etc/drbot/ssh/known_hosts",
    "https://10.0.0.10:2379, https://10.0.0.11:2379 and http://proxy.corp.example.com:3128",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_output_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_empty_text() -> None:
    assert redact("") == ""


def test_already_redacted_text_stays_as_it_is() -> None:
    once = redact("\n".join(c.text for c in CANARIES))
    assert redact(once) == once


@pytest.mark.parametrize("canary", CANARIES, ids=[c.rule for c in CANARIES])
def test_canary_is_redacted(canary: Canary) -> None:
    out = redact(canary.text)
    for secret in canary.secrets:
        assert secret not in out, out
    assert "[REDACTED" in out


@pytest.mark.parametrize("canary", [c for c in CANARIES if c.text.startswith("{")], ids=lambda c: c.rule)
def test_json_stays_json(canary: Canary) -> None:
    json.loads(redact(canary.text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MYSQL_ROOT_PASSWORD=x7", "MYSQL_ROOT_PASSWORD=[REDACTED]"),
        ("db_password: x7", "db_password: [REDACTED]"),
        ("Db.Password=x7", "Db.Password=[REDACTED]"),
        ("KUBE_TOKEN=x7", "KUBE_TOKEN=[REDACTED]"),
        ("accessToken: x7", "accessToken: [REDACTED]"),
        ("secret_key = x7", "secret_key = [REDACTED]"),
        ("SecretAccessKey=x7", "SecretAccessKey=[REDACTED]"),
        ("x-api-key: x7", "x-api-key: [REDACTED]"),
        ('{"auth": "x7"}', '{"auth": "[REDACTED]"}'),
        ("{'password': 'x7'}", "{'password': '[REDACTED]'}"),
        ("--token x7 --server s", "--token [REDACTED] --server s"),
        ("--password=x7", "--password=[REDACTED]"),
        ('- name: KUBE_TOKEN\n  value: "x7"', '- name: KUBE_TOKEN\n  value: "[REDACTED]"'),
        ("?token=x7&a=1#access_token=x8", "?token=[REDACTED]&a=1#access_token=[REDACTED]"),
        ("login with password: x7", "login with password: [REDACTED]"),
        (
            "redis://:x7@redis:6379/0 and mongodb://u:x8@db",
            "redis://:[REDACTED]@redis:6379/0 and mongodb://u:[REDACTED]@db",
        ),
    ],
)
def test_key_rules(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_value_cut_off_with_its_line_is_still_redacted() -> None:
    # An API error body is kept to 300 characters: the closing quote can be lost with the rest.
    assert redact('{"message":"bad", "token": "abcdefghij') == '{"message":"bad", "token": "[REDACTED]'


def test_registered_secrets_are_redacted_wherever_they_appear() -> None:
    assert register_secret("Registered-Canary-5e1f0c")
    line = "pasted Registered-Canary-5e1f0c into the channel (Registered-Canary-5e1f0c)"
    assert redact(line) == "pasted [REDACTED] into the channel ([REDACTED])"


def test_short_values_are_not_registered() -> None:
    assert not register_secret("abc")
    assert redact("abc and abcdef") == "abc and abcdef"


def test_environment_secrets_include_the_redis_password(caplog: pytest.LogCaptureFixture) -> None:
    register_environment_secrets(
        {
            "REDIS_URL": "redis://:Env%2FRedis%40Canary9@redis.infra.svc:6379/0",
            "SLACK_SIGNING_SECRET": "env-signing-canary-77",
            "AWS_SESSION_TOKEN": "x7Q9",
        }
    )
    out = redact("auth Env%2FRedis%40Canary9 then Env/Redis@Canary9, signed with env-signing-canary-77")
    assert out == "auth [REDACTED] then [REDACTED], signed with [REDACTED]"
    assert "AWS_SESSION_TOKEN is shorter than 8 characters" in caplog.text
    assert "x7Q9" not in caplog.text


def test_nested_values_are_redacted() -> None:
    nested = {
        "reason": {
            "key": "kube.api_error",
            "args": {"body": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz"},
        },
        "outputs": ["ok", ("KUBE_TOKEN=x7", 3)],
        "status": 403,
    }
    assert redact_value(nested) == {
        "reason": {"key": "kube.api_error", "args": {"body": "Authorization: Bearer [REDACTED]"}},
        "outputs": ["ok", ("KUBE_TOKEN=[REDACTED]", 3)],
        "status": 403,
    }


def test_log_records_are_redacted_message_and_exception() -> None:
    try:
        raise ValueError("Invalid header value b'Bearer sha256~LogCanary0123456789abcdefgh\\n'")
    except ValueError:
        record = logging.getLogger("drbot.test").makeRecord(
            "drbot.test",
            logging.ERROR,
            __file__,
            1,
            "connecting to %s failed",
            ("redis://:LogPw42@r",),
            sys.exc_info(),
        )
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "LogPw42" not in formatted and "LogCanary" not in formatted
    assert "connecting to redis://:[REDACTED]@r failed" in formatted
    assert "ValueError: Invalid header value b'Bearer [REDACTED OPENSHIFT TOKEN]" in formatted


def test_a_record_without_secrets_keeps_its_arguments() -> None:
    record = logging.makeLogRecord({"msg": "%s %d", "args": ("GET /", 200)})
    RedactingFilter().filter(record)
    assert record.args == ("GET /", 200)


UNCAUGHT = """
import logging, sys, threading
from workers.redact import install_log_redaction
install_log_redaction()
quiet = logging.getLogger("uvicorn.error")  # a library's own handler, not passed on to the root logger
quiet.addHandler(logging.StreamHandler(sys.stderr))
quiet.propagate = False
quiet.error("bad request with X-Auth-Token: %s", "SubprocessCanary1")
thread = threading.Thread(target=lambda: int("KUBE_TOKEN=SubprocessCanary2"))
thread.start()
thread.join()
raise RuntimeError("cannot reach redis://:SubprocessCanary3@redis:6379/0")
"""


def test_installed_redaction_covers_every_handler_and_uncaught_exceptions() -> None:
    root = Path(__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", UNCAUGHT], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert result.returncode == 1
    assert "SubprocessCanary" not in result.stderr, result.stderr
    assert "X-Auth-Token: [REDACTED]" in result.stderr
    assert "KUBE_TOKEN=[REDACTED]" in result.stderr
    assert "RuntimeError: cannot reach redis://:[REDACTED]@redis:6379/0" in result.stderr


def _command_output(size: int) -> str:
    """About `size` characters of what DR steps print, with every canary inside."""
    unit = "\n".join(
        (CRICTL, ETCD_MEMBERS, SNAPSHOT_STATUS, *ORDINARY, KUBECONFIG, *(c.text for c in CANARIES))
    )
    return (unit * (size // len(unit) + 1))[:size]


def test_one_mebibyte_of_output(capsys: pytest.CaptureFixture[str]) -> None:
    """Redaction runs on every command output (up to 1 MiB): print how long that takes."""
    figures = {
        "DR output with secrets": _command_output(1 << 20),
        "one line of key characters": ("a_token" * (1 << 20))[: 1 << 20],
        "a `token` word every 6 characters": ("token " * (1 << 20))[: 1 << 20],
    }
    for name, text in figures.items():
        started = time.perf_counter()
        out = redact(text)
        took = time.perf_counter() - started
        with capsys.disabled():
            print(f"\nredacting 1 MiB ({name}) took {took * 1000:.0f} ms", end="")
        if name.startswith("DR output"):
            assert not [s for c in CANARIES for s in c.secrets if s in out]
            assert CRICTL in out and ETCD_MEMBERS in out
