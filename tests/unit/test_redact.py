import pytest

from workers.redact import redact

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
    assert "    token: [REDACTED]\n" in out
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
        ('{"token": "abc123def456", "kind": "x"}', '{"token": [REDACTED], "kind": "x"}'),
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
            "export AWS_SECRET_ACCESS_KEY=[REDACTED]",
        ),
        (
            "AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH",
            "AWS_SESSION_TOKEN=[REDACTED]",
        ),
        ('"SessionToken": "IQoJb3JpZ2luX2VjEJr//wEaCXVz",', '"SessionToken": [REDACTED],'),
        ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG",', '"SecretAccessKey": [REDACTED],'),
        (
            "HTTPS_PROXY=http://proxyuser:s3cr3t@proxy.corp:3128",
            "HTTPS_PROXY=http://proxyuser:[REDACTED]@proxy.corp:3128",
        ),
        ("mysql://root:hunter2@db/x", "mysql://root:[REDACTED]@db/x"),
        ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
        ("  password: 'correct horse'", "  password: [REDACTED]"),
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
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_output_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_empty_text() -> None:
    assert redact("") == ""
