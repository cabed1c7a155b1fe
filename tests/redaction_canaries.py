"""Canaries: one realistic line (or block) per redaction rule, each carrying secrets that must never be
seen again once drbot has handled the text. The unit tests feed them to redact(); the end-to-end test
feeds them through a twin host's command output, a `/dr note`, and checks every place drbot writes to.

Every secret is distinctive (most say "Canary"), so finding one anywhere means it leaked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Canary:
    rule: str
    text: str
    secrets: tuple[str, ...]


PULL_SECRET_B64 = (
    "eyJhdXRocyI6eyJxdWF5LmlvIjp7ImF1dGgiOiJiM0J6SzNKdlltOTBPbEIxYkd4VFpXTnlaWFJEWVc1aGNua3dNVEl6"
    "TkRVMk56ZzUiLCJlbWFpbCI6Im9wc0BleGFtcGxlLmNvbSJ9fX0="
)
"""base64 of {"auths":{"quay.io":{"auth":"<ops+robot:PullSecretCanary0123456789>",...}}}"""
PULL_SECRET_B64_INDENTED = (
    "ewogICJhdXRocyI6IHsKICAgICJyZWdpc3RyeS5leGFtcGxlLmNvbSI6IHsKICAgICAgImF1dGgiOiAiWTJrdGNtOWliM1E2U1c1a1pX"
    "NTBaV1JRZFd4c1EyRnVZWEo1TkRJPSIKICAgIH0KICB9Cn0K"
)
"""base64 of a pull secret indented as `json.dumps(..., indent=2)` and most tools write it."""
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImNhbmFyeSJ9."
    "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2FuYXJ5In0."
    "Snd0Q2FuYXJ5U2lnbmF0dXJlMDEyMzQ1"
)

CANARIES = (
    Canary("MYSQL_ROOT_PASSWORD=", "MYSQL_ROOT_PASSWORD=Xy7RootPwCanary", ("Xy7RootPwCanary",)),
    Canary(
        "REDIS_PASSWORD= in a command line",
        "podman run -d -e REDIS_PASSWORD=Kq2RedisPwCanary registry.redhat.io/rhel9/redis-6:latest",
        ("Kq2RedisPwCanary",),
    ),
    Canary(
        "SLACK_SIGNING_SECRET=",
        "export SLACK_SIGNING_SECRET='8f14e45fceea167a5a36dedd4bea2543'",
        ("8f14e45fceea167a5a36dedd4bea2543",),
    ),
    Canary(
        "redis://:PASSWORD@host",
        "REDIS_URL=redis://:Zr9RedisUrlCanary@redis.infra.svc:6379/0",
        ("Zr9RedisUrlCanary",),
    ),
    Canary(
        "oc login --token sha256~",
        "oc login --token sha256~LoginTokenCanary0123456789abcdefghijk --server https://api.prod-east.example.com:6443",
        ("LoginTokenCanary0123456789abcdefghijk",),
    ),
    Canary(
        "bare sha256~ token", "sha256~BareTokenCanary0123456789abcdefghijklm", ("BareTokenCanary0123456789",)
    ),
    Canary(
        "GITHUB_TOKEN=", "GITHUB_TOKEN=v1.GithubInstallationCanary0123", ("GithubInstallationCanary0123",)
    ),
    Canary("KUBE_TOKEN=", "export KUBE_TOKEN=KubeTokenCanary0123456789", ("KubeTokenCanary0123456789",)),
    Canary(
        '{"Token": ...}',
        '{"kind": "TokenRequest", "Token": "JsonTokenCanary0123", "Expiry": "2026-11-29T10:53:00Z"}',
        ("JsonTokenCanary0123",),
    ),
    Canary(
        "X-Auth-Token:",
        "curl -s -H 'X-Auth-Token: XAuthCanary7788' https://swift.example.com/v1/AUTH_ops/etcd-backups",
        ("XAuthCanary7788",),
    ),
    Canary(
        "?token=",
        "GET /v2/ops/etcd-backup/blobs/uploads?token=QueryTokenCanary42&digest=sha256:"
        "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae HTTP/1.1",
        ("QueryTokenCanary42",),
    ),
    Canary(
        "?access_token=",
        "302 Location: https://console.example.com/auth/callback?access_token=AccessTokenCanary99&token_type=Bearer",
        ("AccessTokenCanary99",),
    ),
    Canary("secret_key = (s3cfg)", "secret_key = S3cfgSecretKeyCanary/0123+abcd", ("S3cfgSecretKeyCanary",)),
    Canary(
        ".dockerconfigjson in a Secret",
        f"apiVersion: v1\ndata:\n  .dockerconfigjson: {PULL_SECRET_B64}\nkind: Secret\n"
        "type: kubernetes.io/dockerconfigjson",
        (PULL_SECRET_B64[:40],),
    ),
    Canary(
        'pull secret JSON ("auths"/"auth")',
        '{"auths":{"quay.io":{"auth":"b3BzK3JvYm90OlB1bGxTZWNyZXRDYW5hcnkwMTIzNDU2Nzg5","email":"ops@example.com"}}}',
        ("b3BzK3JvYm90OlB1bGxTZWNyZXRDYW5hcnkwMTIzNDU2Nzg5",),
    ),
    Canary("pull secret base64", PULL_SECRET_B64_INDENTED, (PULL_SECRET_B64_INDENTED[40:100],)),
    Canary(
        "a Secret's data: (YAML)",
        "apiVersion: v1\ndata:\n  password: ZGItcGFzc3dvcmQtY2FuYXJ5LTUxNTA=\n"
        "  username: YmFja3VwLW9wZXJhdG9yLWNhbmFyeQ==\nkind: Secret",
        ("ZGItcGFzc3dvcmQtY2FuYXJ5LTUxNTA=", "YmFja3VwLW9wZXJhdG9yLWNhbmFyeQ=="),
    ),
    Canary(
        "a Secret's data: (JSON)",
        '{"apiVersion": "v1", "data": {"ca.crt": "LS0tLS1CRUdJTiBDRVJU", '
        '"username": "anNvbi1kYXRhLWNhbmFyeS04MDg2"}, "kind": "Secret"}',
        ("anNvbi1kYXRhLWNhbmFyeS04MDg2",),
    ),
    Canary(
        "PuTTY key file",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: drbot-canary\nPublic-Lines: 1\n"
        "AAAAC3NzaC1lZDI1NTE5AAAAIPuttyPublicKeyLine\nPrivate-Lines: 1\nAAAAIPuttyPrivateCanary0123456789\n"
        "Private-MAC: 4f0c9b6e2b1d7a3c",
        ("AAAAIPuttyPrivateCanary0123456789",),
    ),
    Canary(
        "PuTTY Private-Lines: (head capped away)",
        "Private-Lines: 1\nAAAAIPuttyTailCanary0123456789ab\nPrivate-MAC: 9e1d0c4b7a2f3e58",
        ("AAAAIPuttyTailCanary0123456789ab",),
    ),
    Canary("AWS access key id", "aws_access_key_id = AKIAIOSFODNN7CANARY1", ("AKIAIOSFODNN7CANARY1",)),
    Canary(
        "AWS secret access key",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY",
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY",),
    ),
    Canary(
        "AWS session token (JSON)",
        '"SessionToken": "IQoJb3JpZ2luX2VjCANARYwEaCXVzLWVhc3QtMSJH",',
        ("IQoJb3JpZ2luX2VjCANARYwEaCXVzLWVhc3QtMSJH",),
    ),
    Canary("JWT", f"projected token {JWT} mounted for the pod", (JWT[-24:],)),
    Canary(
        "bearer token",
        "Authorization: Bearer BearerCanary0123456789abcdef",
        ("BearerCanary0123456789abcdef",),
    ),
    Canary(
        "basic auth",
        "curl -H 'Authorization: Basic YmFzaWMtdXNlcjpiYXNpYy1jYW5hcnktcHc=' https://registry.example.com/v2/",
        ("YmFzaWMtdXNlcjpiYXNpYy1jYW5hcnktcHc=",),
    ),
    Canary(
        "private key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQPrivateKeyCanary\n"
        "QyNTUxOQAAACDxbGZ0dGVzdGtleWRhdGFmb3JkcmJvdHJlZGFjdGlvbnRlc3Q\n-----END OPENSSH PRIVATE KEY-----",
        ("PrivateKeyCanary", "QyNTUxOQAAACDxbGZ0dGVzdGtleWRhdGFmb3JkcmJvdHJlZGFjdGlvbnRlc3Q"),
    ),
    Canary(
        "kubeconfig client data",
        "    client-key-data: S3ViZWNvbmZpZ0NsaWVudEtleUNhbmFyeQ==",
        ("S3ViZWNvbmZpZ0NsaWVudEtleUNhbmFyeQ==",),
    ),
    Canary(
        "password in a proxy URL",
        "HTTPS_PROXY=http://proxyuser:ProxyPwCanary@proxy.corp.example.com:3128",
        ("ProxyPwCanary",),
    ),
    Canary(
        "Slack token",
        "SLACK_BOT_TOKEN=xoxb-123456789012-123456789012-SlackBotCanaryToken",
        ("SlackBotCanaryToken",),
    ),
    Canary(
        "a pod's env entry",
        "        - name: DB_PASSWORD\n          value: PodEnvCanary0123",
        ("PodEnvCanary0123",),
    ),
    Canary(
        "--docker-password VALUE",
        "oc create secret docker-registry regcred --docker-server=quay.io --docker-password DockerPwCanary01",
        ("DockerPwCanary01",),
    ),
    Canary("db_password: several words", "  db_password: correct horse CanaryStaple", ("CanaryStaple",)),
)
