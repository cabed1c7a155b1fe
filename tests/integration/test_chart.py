"""The Helm chart, rendered and linted by Helm's own Go code (helm-python-sdk wraps the Helm v4 SDK).

Every rendered object is checked field by field against the typed models of the `kubernetes`
client (unknown fields, wrong types, missing required fields), and the clusters file the chart
renders is read back with drbot's own parser.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import helm_python as helm
import kubernetes.client
import pytest
import yaml
from redis.connection import parse_url

from procedures.clusters import load_clusters, parse_clusters

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "drbot"
RELEASE = "drbot"
NAMESPACE = "drbot"

# The least a working release needs: a Redis and Slack credentials.
MINIMAL: dict[str, Any] = {
    "redis": {"url": "redis://redis.infra.svc:6379/0"},
    "slack": {"existingSecret": "drbot-slack"},
}

CLUSTERS: list[dict[str, Any]] = [
    {
        "name": "prod-east",
        "language": "zh-CN",
        "channel": "C0123INCIDENT",
        "platform": "user-provisioned",
        "approvers": ["U01ALICE", "U02BOB"],
        "hosts": [
            {"name": "master-0", "address": "10.0.0.10"},
            {"name": "master-1", "address": "10.0.0.11", "port": 2222},
        ],
    },
]

# Socket Mode, Redis inside the release, and every secret taken from an existing Secret.
# The inline secrets are set too, to prove they are ignored when an existingSecret is named.
FULL: dict[str, Any] = {
    "image": {"repository": "registry.example.com/sre/drbot", "tag": "0.1.0"},
    "slack": {
        "socketMode": True,
        "existingSecret": "drbot-slack",
        "botToken": "xoxb-inline-must-not-render",
        "appToken": "xapp-inline-must-not-render",
        "apiUrl": "https://slack.com/api/",
    },
    "redis": {
        "internal": {"enabled": True, "auth": {"existingSecret": "drbot-redis-pw", "existingSecretKey": "pw"}}
    },
    "ssh": {"existingSecret": "drbot-ssh", "privateKey": "INLINE-SSH-KEY-MUST-NOT-RENDER"},
    "kubeconfigs": {"existingSecret": "drbot-kubeconfigs"},
    "aws": {"existingSecret": "drbot-aws", "region": "us-east-1"},
    "clusters": CLUSTERS,
    "ingress": {"enabled": True, "host": "drbot.example.com"},
    "worker": {"replicas": 3},
}

# Plain HTTP mode with inline secrets (the chart creates the Secrets) and an Ingress.
INLINE: dict[str, Any] = {
    "slack": {"botToken": "xoxb-1-2-3", "signingSecret": "s3cr3t"},
    "redis": {"url": "redis://redis.infra.svc:6379/2"},
    "ssh": {
        "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
        "knownHosts": "10.0.0.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG\n",
    },
    "kubeconfigs": {"files": {"prod-east": "apiVersion: v1\nkind: Config\n"}},
    "aws": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "wJalrEXAMPLE"},
    "clusters": CLUSTERS,
    "ingress": {"enabled": True, "host": "drbot.example.com", "tlsSecretName": "drbot-tls"},
}

# Redis inside the release with the password the chart generates, AOF on an emptyDir.
INTERNAL: dict[str, Any] = {
    "slack": {"existingSecret": "drbot-slack"},
    "redis": {"internal": {"enabled": True, "persistence": {"enabled": False}}},
}

# The example the README points people at.
EXAMPLE: dict[str, Any] = yaml.safe_load((CHART_DIR / "examples" / "production-values.yaml").read_text())

# Egress limited to address ranges, one list per destination, IPv4 and IPv6.
EGRESS_CIDRS: dict[str, Any] = {
    "redis": {"port": 6380, "cidrs": ["10.96.40.0/24"]},
    "slack": {"cidrs": ["192.0.2.10/32"]},
    "https": {"cidrs": ["10.20.0.0/16", "fd00:20::/64"]},
    "ssh": {"ports": [22, 2222], "cidrs": ["10.0.0.0/24"]},
    "api": {"cidrs": ["10.0.0.5/32", "2001:db8::5/128"]},
}
EGRESS: dict[str, Any] = {**INLINE, "networkPolicy": {"egress": EGRESS_CIDRS}}

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")
PRIMITIVES = {"str": (str,), "datetime": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def model_class(api_version: str, kind: str) -> type:
    name = api_version.split("/")[-1].capitalize() + kind
    cls = getattr(kubernetes.client, name, None)
    assert cls is not None, f"{api_version} {kind} is not a Kubernetes API type ({name} unknown)"
    return cls


def type_errors(data: Any, type_name: str, where: str) -> list[str]:
    """Every field of `data` that the Kubernetes OpenAPI type `type_name` does not define or accept."""
    if type_name == "object":
        return []
    if type_name.startswith("list["):
        if not isinstance(data, list):
            return [f"{where}: expected a list, got {data!r}"]
        inner = type_name[5:-1]
        return [e for i, item in enumerate(data) for e in type_errors(item, inner, f"{where}[{i}]")]
    if type_name.startswith("dict["):
        if not isinstance(data, dict):
            return [f"{where}: expected a mapping, got {data!r}"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [e for k, v in data.items() for e in type_errors(v, inner, f"{where}.{k}")]
    if type_name in PRIMITIVES:
        accepted = PRIMITIVES[type_name]
        if isinstance(data, bool) and bool not in accepted:
            return [f"{where}: expected {type_name}, got {data!r}"]
        return [] if isinstance(data, accepted) else [f"{where}: expected {type_name}, got {data!r}"]
    cls = getattr(kubernetes.client, type_name)
    if not isinstance(data, dict):
        return [f"{where}: expected a {type_name} mapping, got {data!r}"]
    fields = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    errors: list[str] = []
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{where}: {type_name} has no field {key!r}")
        elif value is not None:
            errors.extend(type_errors(value, cls.openapi_types[fields[key]], f"{where}.{key}"))
    return errors


def name_errors(obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    errors = [] if DNS_SUBDOMAIN.match(meta["name"]) else [f"metadata.name {meta['name']!r}"]
    labels = dict(meta.get("labels") or {})
    pod_spec = (obj.get("spec") or {}).get("template", {}).get("spec")
    if pod_spec:
        labels.update(obj["spec"]["template"]["metadata"].get("labels") or {})
        for container in pod_spec["containers"]:
            if not DNS_LABEL.match(container["name"]):
                errors.append(f"container name {container['name']!r}")
            errors.extend(
                f"port name {p['name']!r}"
                for p in container.get("ports", [])
                if not PORT_NAME.match(p.get("name", "x"))
            )
    errors.extend(f"label {k}={v!r}" for k, v in labels.items() if not LABEL_VALUE.match(v))
    return errors


def assert_valid_kubernetes_object(obj: dict[str, Any]) -> None:
    cls = model_class(obj["apiVersion"], obj["kind"])
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    problems = type_errors(obj, cls.__name__, where) + name_errors(obj)
    assert not problems, "\n".join(problems)
    # The typed models reject missing required fields and bad enum values on construction.
    response = SimpleNamespace(data=json.dumps(obj))
    kubernetes.client.ApiClient().deserialize(response, cls.__name__)


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (only,) = obj["spec"]["template"]["spec"]["containers"]
    return only


def env_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(obj)["env"]}


def test_lint_has_no_warnings() -> None:
    for values in (MINIMAL, FULL, INLINE, INTERNAL, EXAMPLE, EGRESS):
        report = helm.lint(CHART_DIR, values, strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize(
    "values",
    [MINIMAL, FULL, INLINE, INTERNAL, EXAMPLE, EGRESS],
    ids=["minimal", "full", "inline", "internal", "example", "egress"],
)
def test_every_object_is_a_valid_kubernetes_object(chart: helm.Chart, values: dict[str, Any]) -> None:
    objects = render(chart, values)
    assert objects
    for obj in objects:
        assert_valid_kubernetes_object(obj)


def test_minimal_release_has_http_bot_workers_and_no_secrets(chart: helm.Chart) -> None:
    objects = render(chart, MINIMAL)
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
    ]
    deployments = by_kind(objects, "Deployment")
    assert deployments["drbot-worker"]["spec"]["replicas"] == 2
    assert container(deployments["drbot-worker"])["args"] == ["worker"]
    assert "ports" not in container(deployments["drbot-worker"])
    assert env_of(deployments["drbot-bot"])["REDIS_URL"]["value"] == "redis://redis.infra.svc:6379/0"
    service = by_kind(objects, "Service")["drbot-bot"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployments["drbot-bot"]["spec"]["selector"]["matchLabels"]


def test_bot_listens_on_all_interfaces_with_probes_and_metrics(chart: helm.Chart) -> None:
    bot = by_kind(render(chart, MINIMAL), "Deployment")["drbot-bot"]
    main = container(bot)
    assert main["command"] == ["drbot"]
    assert main["args"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
    assert main["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = bot["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "3000"
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("values", [MINIMAL, FULL], ids=["minimal", "full"])
def test_pods_run_non_root_read_only_without_capabilities(chart: helm.Chart, values: dict[str, Any]) -> None:
    objects = render(chart, values)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == (3 if values is FULL else 2)
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert container(workload)["resources"]["requests"]
    accounts = by_kind(objects, "ServiceAccount")
    assert sorted(accounts) == ["drbot-bot", "drbot-worker"]
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())


def test_socket_mode_with_internal_redis_and_existing_secrets(chart: helm.Chart) -> None:
    objects = render(chart, FULL)
    deployments = by_kind(objects, "Deployment")
    bot = deployments["drbot-bot"]
    assert container(bot)["args"][:2] == ["serve", "--socket-mode"]
    assert container(bot)["image"] == "registry.example.com/sre/drbot:0.1.0"
    assert deployments["drbot-worker"]["spec"]["replicas"] == 3
    # Socket Mode: nothing inbound from Slack, so no bot Service and no Ingress even if enabled.
    assert list(by_kind(objects, "Service")) == ["drbot-redis"]
    assert by_kind(objects, "Ingress") == {}
    redis = by_kind(objects, "StatefulSet")["drbot-redis"]
    assert container(redis)["image"].startswith("redis:")
    assert redis["spec"]["replicas"] == 1
    env = env_of(bot)
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "drbot-redis-pw", "key": "pw"}
    assert env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@drbot-redis:6379/0"
    assert env["SLACK_APP_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "drbot-slack",
        "key": "SLACK_APP_TOKEN",
        "optional": False,
    }
    assert "optional" not in env["SLACK_SIGNING_SECRET"]["valueFrom"]["secretKeyRef"]
    assert env["SLACK_API_URL"]["value"] == "https://slack.com/api/"
    worker_env = env_of(deployments["drbot-worker"])
    assert worker_env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "drbot-aws"
    assert worker_env["AWS_DEFAULT_REGION"]["value"] == "us-east-1"


def test_existing_secrets_are_referenced_never_inlined(chart: helm.Chart) -> None:
    manifests = chart.render(FULL, name=RELEASE, namespace=NAMESPACE, is_install=True)
    text = "\n".join(manifests.values())
    for secret in (
        "xoxb-inline-must-not-render",
        "xapp-inline-must-not-render",
        "INLINE-SSH-KEY-MUST-NOT-RENDER",
    ):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
    objects = render(chart, FULL)
    assert by_kind(objects, "Secret") == {}
    volumes = {
        v["name"]: v
        for v in by_kind(objects, "Deployment")["drbot-worker"]["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["ssh"]["secret"]["secretName"] == "drbot-ssh"
    assert volumes["kubeconfigs"]["secret"]["secretName"] == "drbot-kubeconfigs"


def secrets_used(deployment: dict[str, Any]) -> set[str]:
    """Every Secret the pod reads: as a volume (plain or projected), in env, or in envFrom."""
    pod = deployment["spec"]["template"]["spec"]
    names: set[str] = set()
    for volume in pod["volumes"]:
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        names.update(
            s["secret"]["name"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s
        )
    for box in pod["containers"] + pod.get("initContainers", []):
        names.update(
            item["valueFrom"]["secretKeyRef"]["name"]
            for item in box.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        )
        names.update(item["secretRef"]["name"] for item in box.get("envFrom", []) if "secretRef" in item)
    return names


WORKER_ONLY = {"drbot-ssh", "drbot-kubeconfigs", "drbot-aws"}


@pytest.mark.parametrize(
    ("values", "redis_secret"),
    [(FULL, {"drbot-redis-pw"}), (INLINE, set()), (EXAMPLE, {"drbot-redis"})],
    ids=["full", "inline", "example"],
)
def test_only_workers_get_the_ssh_key_kubeconfigs_and_aws_credentials(
    chart: helm.Chart, values: dict[str, Any], redis_secret: set[str]
) -> None:
    deployments = by_kind(render(chart, values), "Deployment")
    bot, worker = deployments["drbot-bot"], deployments["drbot-worker"]
    # The Slack-facing bot: Slack, Redis and the clusters file, nothing that reaches a cluster.
    assert secrets_used(bot) == {"drbot-slack", *redis_secret}
    assert [m["name"] for m in container(bot)["volumeMounts"]] == ["clusters", "tmp"]
    assert not [name for name in env_of(bot) if name.startswith("AWS_")]
    assert "envFrom" not in container(bot)
    # The workers: what the runbook steps use, and no Slack token (they never call Slack).
    assert secrets_used(worker) == {*WORKER_ONLY, *redis_secret}
    assert {m["mountPath"] for m in container(worker)["volumeMounts"]} >= {
        "/etc/drbot/ssh",
        "/etc/drbot/kubeconfigs",
    }
    assert env_of(worker)["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "drbot-aws"
    assert not [name for name in env_of(worker) if name.startswith("SLACK_")]


def test_credentials_of_one_component_leave_the_other_untouched(chart: helm.Chart) -> None:
    """A new SSH key, kubeconfig or AWS key rolls the workers only; a new Slack token the bot only."""
    rotated_cluster_access = {
        **INLINE,
        "ssh": {**INLINE["ssh"], "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnew\n-----END"},
        "kubeconfigs": {"files": {"prod-east": "apiVersion: v1\nkind: Config\nclusters: []\n"}},
        "aws": {"accessKeyId": "AKIANEW", "secretAccessKey": "new", "region": "eu-west-1"},
    }
    rotated_slack = {**INLINE, "slack": {"botToken": "xoxb-4-5-6", "signingSecret": "n3w"}}
    before = by_kind(render(chart, INLINE), "Deployment")
    after_cluster_access = by_kind(render(chart, rotated_cluster_access), "Deployment")
    after_slack = by_kind(render(chart, rotated_slack), "Deployment")
    assert after_cluster_access["drbot-bot"] == before["drbot-bot"]
    assert after_slack["drbot-worker"] == before["drbot-worker"]
    for after, name in ((after_cluster_access, "drbot-worker"), (after_slack, "drbot-bot")):
        annotations = after[name]["spec"]["template"]["metadata"]["annotations"]
        assert (
            annotations["checksum/secrets"]
            != before[name]["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]
        )


def test_bot_and_workers_run_under_their_own_service_accounts(chart: helm.Chart) -> None:
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/drbot-s3"}
    objects = render(chart, {**MINIMAL, "serviceAccount": {"worker": {"annotations": role}}})
    accounts = by_kind(objects, "ServiceAccount")
    # The S3 role (IRSA) goes to the workers' account only.
    assert "annotations" not in accounts["drbot-bot"]["metadata"]
    assert accounts["drbot-worker"]["metadata"]["annotations"] == role
    deployments = by_kind(objects, "Deployment")
    for component in ("bot", "worker"):
        pod = deployments[f"drbot-{component}"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"drbot-{component}"
    named = {"create": False, "bot": {"name": "chat"}, "worker": {"name": "runner"}}
    objects = render(chart, {**MINIMAL, "serviceAccount": named})
    assert by_kind(objects, "ServiceAccount") == {}
    deployments = by_kind(objects, "Deployment")
    assert deployments["drbot-bot"]["spec"]["template"]["spec"]["serviceAccountName"] == "chat"
    assert deployments["drbot-worker"]["spec"]["template"]["spec"]["serviceAccountName"] == "runner"


def test_inline_secrets_become_chart_secrets_and_ingress_exposes_only_slack(chart: helm.Chart) -> None:
    objects = render(chart, INLINE)
    secrets = by_kind(objects, "Secret")
    assert sorted(secrets) == ["drbot-aws", "drbot-kubeconfigs", "drbot-slack", "drbot-ssh"]
    slack = {k: base64.b64decode(v).decode() for k, v in secrets["drbot-slack"]["data"].items()}
    assert slack == {"SLACK_BOT_TOKEN": "xoxb-1-2-3", "SLACK_SIGNING_SECRET": "s3cr3t"}
    assert sorted(secrets["drbot-ssh"]["data"]) == ["id_ed25519", "known_hosts"]
    assert sorted(secrets["drbot-kubeconfigs"]["data"]) == ["prod-east"]
    (rule,) = by_kind(objects, "Ingress")["drbot-bot"]["spec"]["rules"]
    assert rule["host"] == "drbot.example.com"
    assert [(p["path"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]] == [
        ("/slack/events", "drbot-bot")
    ]


def test_clusters_file_parses_and_points_at_the_workers_mounted_secrets(chart: helm.Chart) -> None:
    objects = render(chart, FULL)
    text = by_kind(objects, "ConfigMap")["drbot-clusters"]["data"]["clusters.yaml"]
    clusters = parse_clusters(yaml.safe_load(text), source="rendered ConfigMap")
    prod = clusters.get("prod-east")
    assert prod.kubeconfig == "/etc/drbot/kubeconfigs/prod-east"
    assert (prod.language, prod.platform, prod.approvers) == (
        "zh-CN",
        "user-provisioned",
        ("U01ALICE", "U02BOB"),
    )
    assert [(h.name, h.address, h.port, h.user) for h in prod.hosts] == [
        ("master-0", "10.0.0.10", 22, "core"),
        ("master-1", "10.0.0.11", 2222, "core"),
    ]
    assert {h.key for h in prod.hosts} == {"/etc/drbot/ssh/id_ed25519"}
    assert {h.known_hosts for h in prod.hosts} == {"/etc/drbot/ssh/known_hosts"}
    for name in ("drbot-bot", "drbot-worker"):
        deployment = by_kind(objects, "Deployment")[name]
        mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
        assert env_of(deployment)["DRBOT_CONFIG"]["value"] == mounts["clusters"]["mountPath"]
    worker = by_kind(objects, "Deployment")["drbot-worker"]
    pod = worker["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(worker)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["ssh"] == {"name": "ssh", "mountPath": "/etc/drbot/ssh", "readOnly": True}
    assert mounts["kubeconfigs"]["mountPath"] == "/etc/drbot/kubeconfigs"
    assert volumes["ssh"]["secret"]["defaultMode"] == 0o400
    assert volumes["kubeconfigs"]["secret"]["defaultMode"] == 0o400
    # Secret volumes are root-owned; without fsGroup the non-root user could not read the key.
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def test_clusters_file_holds_no_secrets_and_loads_where_the_secrets_are_absent(
    chart: helm.Chart, tmp_path: Path
) -> None:
    objects = render(chart, INLINE)
    text = by_kind(objects, "ConfigMap")["drbot-clusters"]["data"]["clusters.yaml"]
    for secret in (
        INLINE["ssh"]["privateKey"],
        INLINE["ssh"]["knownHosts"],
        INLINE["kubeconfigs"]["files"]["prod-east"],
        INLINE["aws"]["secretAccessKey"],
        INLINE["slack"]["botToken"],
    ):
        assert secret.strip() not in text
    # The bot mounts the same file without the key and kubeconfigs it names: loading it must not
    # open them, or the bot would not start.
    named = {"/etc/drbot/kubeconfigs/prod-east", "/etc/drbot/ssh/id_ed25519", "/etc/drbot/ssh/known_hosts"}
    if any(Path(path).exists() for path in named):
        pytest.skip("this machine has drbot's pod paths, so a pod without them cannot be imitated")
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    prod = load_clusters(path).get("prod-east")
    assert {prod.kubeconfig, *(h.key for h in prod.hosts), *(h.known_hosts for h in prod.hosts)} == named


def test_readme_example_uses_only_existing_secrets_and_the_ingress(chart: helm.Chart) -> None:
    objects = render(chart, EXAMPLE)
    assert by_kind(objects, "Secret") == {}
    bot = by_kind(objects, "Deployment")["drbot-bot"]
    assert env_of(bot)["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "drbot-redis",
        "key": "REDIS_URL",
    }
    ingress = by_kind(objects, "Ingress")["drbot-bot"]["spec"]
    assert ingress["tls"] == [{"hosts": ["drbot.example.com"], "secretName": "drbot-tls"}]
    text = by_kind(objects, "ConfigMap")["drbot-clusters"]["data"]["clusters.yaml"]
    prod = parse_clusters(yaml.safe_load(text)).get("prod-east")
    assert [h.name for h in prod.hosts] == ["master-0", "master-1", "master-2"]


def egress_by_port(policy: dict[str, Any]) -> dict[tuple[int, str], set[str]]:
    """Each port the policy lets out, with where to: CIDRs, "pod:<component>", or "any"."""
    allowed: dict[tuple[int, str], set[str]] = {}
    for rule in policy["spec"]["egress"]:
        assert rule.get("ports"), f"a rule without ports allows every port: {rule}"
        peers = {
            peer["ipBlock"]["cidr"]
            if "ipBlock" in peer
            else "pod:" + peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in rule.get("to", [])
        } or {"any"}
        for port in rule["ports"]:
            allowed.setdefault((port["port"], port["protocol"]), set()).update(peers)
    return allowed


DNS = {(53, "UDP"): {"any"}, (53, "TCP"): {"any"}}


def test_network_policies_by_default_limit_traffic_by_port_and_keep_the_bot_off_ssh_and_apis(
    chart: helm.Chart,
) -> None:
    policies = by_kind(render(chart, MINIMAL), "NetworkPolicy")
    bot, worker = policies["drbot-bot"], policies["drbot-worker"]
    assert [p["port"] for rule in bot["spec"]["ingress"] for p in rule["ports"]] == [3000]
    assert worker["spec"]["ingress"] == []
    assert bot["spec"]["policyTypes"] == worker["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # The bot talks to Redis and Slack; only the workers reach hosts, cluster APIs and S3.
    assert egress_by_port(bot) == {**DNS, (6379, "TCP"): {"any"}, (443, "TCP"): {"any"}}
    assert egress_by_port(worker) == {
        **DNS,
        (6379, "TCP"): {"any"},
        (443, "TCP"): {"any"},
        (22, "TCP"): {"any"},
        (6443, "TCP"): {"any"},
    }
    internal = by_kind(render(chart, FULL), "NetworkPolicy")
    for name in ("drbot-bot", "drbot-worker"):
        assert egress_by_port(internal[name])[(6379, "TCP")] == {"pod:redis"}
    redis_policy = internal["drbot-redis"]["spec"]
    allowed = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in redis_policy["ingress"][0]["from"]
    ]
    assert allowed == ["bot", "worker"]


def test_egress_cidrs_limit_each_destination_and_the_bot_gets_only_slack(chart: helm.Chart) -> None:
    policies = by_kind(render(chart, EGRESS), "NetworkPolicy")
    assert egress_by_port(policies["drbot-bot"]) == {
        **DNS,
        (6380, "TCP"): {"10.96.40.0/24"},
        (443, "TCP"): {"192.0.2.10/32"},
    }
    assert egress_by_port(policies["drbot-worker"]) == {
        **DNS,
        (6380, "TCP"): {"10.96.40.0/24"},
        (443, "TCP"): {"10.20.0.0/16", "fd00:20::/64"},
        (22, "TCP"): {"10.0.0.0/24"},
        (2222, "TCP"): {"10.0.0.0/24"},
        (6443, "TCP"): {"10.0.0.5/32", "2001:db8::5/128"},
    }
    example = by_kind(render(chart, EXAMPLE), "NetworkPolicy")["drbot-worker"]
    assert egress_by_port(example)[(22, "TCP")] == egress_by_port(example)[(6443, "TCP")] == {"10.0.0.0/24"}


def test_a_destination_without_ports_is_closed_not_opened(chart: helm.Chart) -> None:
    values = {**MINIMAL, "networkPolicy": {"egress": {"ssh": {"ports": [], "cidrs": ["10.0.0.0/24"]}}}}
    worker = by_kind(render(chart, values), "NetworkPolicy")["drbot-worker"]
    # egress_by_port fails on a rule without ports, which would let everything out.
    assert set(egress_by_port(worker)) == {*DNS, (6379, "TCP"), (443, "TCP"), (6443, "TCP")}


def redis_args(statefulset: dict[str, Any]) -> dict[str, str]:
    """The Redis container's `--option value` arguments, as a mapping."""
    command, *args = container(statefulset)["args"]
    assert command == "redis-server"
    return dict(zip(args[::2], args[1::2], strict=True))


def generated_password(objects: list[dict[str, Any]]) -> str:
    secret = by_kind(objects, "Secret")["drbot-redis-auth"]
    assert list(secret["data"]) == ["REDIS_PASSWORD"]
    return base64.b64decode(secret["data"]["REDIS_PASSWORD"]).decode()


def test_internal_redis_password_is_generated_into_a_secret_and_nowhere_else(chart: helm.Chart) -> None:
    objects = render(chart, INTERNAL)
    password = generated_password(objects)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    # A new release gets its own password (an installed one keeps its own, through lookup).
    assert generated_password(render(chart, INTERNAL)) != password
    encoded = base64.b64encode(password.encode()).decode()
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        assert password not in text and encoded not in text, f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize(
    ("values", "secret"),
    [
        (INTERNAL, {"name": "drbot-redis-auth", "key": "REDIS_PASSWORD"}),
        (FULL, {"name": "drbot-redis-pw", "key": "pw"}),
    ],
    ids=["generated", "existing"],
)
def test_internal_redis_uses_the_secret_noeviction_and_aof(
    chart: helm.Chart, values: dict[str, Any], secret: dict[str, str]
) -> None:
    statefulset = by_kind(render(chart, values), "StatefulSet")["drbot-redis"]
    args = redis_args(statefulset)
    assert args["--requirepass"] == "$(REDIS_PASSWORD)"
    assert args["--maxmemory-policy"] == "noeviction"
    assert args["--maxmemory"] == "160mb"
    assert (args["--appendonly"], args["--appendfsync"]) == ("yes", "everysec")
    env = env_of(statefulset)
    # The expansion only works for a variable defined earlier in the list.
    assert list(env).index("REDIS_PASSWORD") == 0
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == secret
    # The probes' redis-cli authenticates through REDISCLI_AUTH, not a password on its command line.
    assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == secret
    assert container(statefulset)["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    assert all("value" not in item for item in env.values())


def test_internal_redis_keeps_its_append_only_file_on_a_volume(chart: helm.Chart) -> None:
    persistent = by_kind(render(chart, FULL), "StatefulSet")["drbot-redis"]
    (claim,) = persistent["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    ephemeral = by_kind(render(chart, INTERNAL), "StatefulSet")["drbot-redis"]
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    assert ephemeral["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    for statefulset in (persistent, ephemeral):
        (mount,) = container(statefulset)["volumeMounts"]
        assert (mount["name"], mount["mountPath"]) == ("data", redis_args(statefulset)["--dir"])
        assert redis_args(statefulset)["--appendonly"] == "yes"


def test_bot_and_worker_get_the_internal_redis_password_from_the_secret(chart: helm.Chart) -> None:
    objects = render(chart, INTERNAL)
    password = generated_password(objects)
    for name in ("drbot-bot", "drbot-worker"):
        env = env_of(by_kind(objects, "Deployment")[name])
        names = list(env)
        assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "drbot-redis-auth",
            "key": "REDIS_PASSWORD",
        }
        # As the kubelet expands it, and as drbot's Redis client reads it.
        url = env["REDIS_URL"]["value"].replace("$(REDIS_PASSWORD)", password)
        assert parse_url(url) == {"password": password, "host": "drbot-redis", "port": 6379, "db": 0}


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@redis.infra.svc:6379/0",
        "rediss://drbot:hunter2@redis:6380/1",
        "redis://redis/0?password=hunter2",
    ],
    ids=["password", "user-and-password", "query"],
)
def test_a_password_in_redis_url_is_refused(chart: helm.Chart, url: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"redis\.url carries a password.*redis\.existingSecret"):
        chart.render({**MINIMAL, "redis": {"url": url}}, name=RELEASE, namespace=NAMESPACE)


def test_a_redis_url_with_only_a_user_name_is_accepted(chart: helm.Chart) -> None:
    objects = render(chart, {**MINIMAL, "redis": {"url": "redis://drbot@redis.infra.svc:6379/0"}})
    env = env_of(by_kind(objects, "Deployment")["drbot-bot"])
    assert env["REDIS_URL"]["value"] == "redis://drbot@redis.infra.svc:6379/0"


def test_release_without_redis_fails_with_instructions(chart: helm.Chart) -> None:
    with pytest.raises(
        helm.HelmRenderError, match=r"drbot needs Redis and none is configured: set redis\.url"
    ):
        chart.render(None, name=RELEASE, namespace=NAMESPACE)
    two = {**MINIMAL, "redis": {"url": "redis://a:6379/0", "internal": {"enabled": True}}}
    with pytest.raises(helm.HelmRenderError, match="exactly one Redis"):
        chart.render(two, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis": MINIMAL["redis"]}, "no Slack credentials: set slack.existingSecret"),
        (
            {"redis": MINIMAL["redis"], "slack": {"botToken": "xoxb-1", "socketMode": True}},
            r"slack\.socketMode=true needs an app-level token",
        ),
        (
            {
                "redis": MINIMAL["redis"],
                "slack": {"botToken": "xoxb-1", "appToken": "xapp-1", "socketMode": True},
            },
            "no Slack signing secret",
        ),
        ({**MINIMAL, "clusters": CLUSTERS}, "clusters are configured but no SSH key is"),
        (
            {
                **MINIMAL,
                "clusters": CLUSTERS,
                "ssh": {"existingSecret": "s"},
                "kubeconfigs": {"files": {"other": "x"}},
            },
            "cluster prod-east has no kubeconfig: add kubeconfigs.files.prod-east",
        ),
    ],
    ids=[
        "no-slack",
        "socket-mode-without-app-token",
        "socket-mode-without-signing-secret",
        "clusters-without-ssh",
        "cluster-without-kubeconfig",
    ],
)
def test_unusable_values_fail_with_a_clear_message(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"worker": {"replicas": "two"}}, "/worker/replicas"),
        (
            {"clusters": [{"name": "prod", "platform": "ipi", "hosts": [{"name": "m0", "address": "a"}]}]},
            "/clusters/0/platform",
        ),
        (
            {"clusters": [{"name": "Prod_East", "hosts": [{"name": "m0", "address": "a"}]}]},
            "/clusters/0/name",
        ),
        ({"redis": {"url": "localhost:6379"}}, "/redis/url"),
        ({"slack": {"sockteMode": True}}, "sockteMode"),
        ({"redis": {"internal": {"password": "hunter2"}}}, "'password' not allowed"),
        ({"redis": {"internal": {"auth": {"password": "hunter2"}}}}, "'password' not allowed"),
        ({"redis": {"internal": {"maxmemory": "0"}}}, "/redis/internal/maxmemory"),
        ({"networkPolicy": {"egress": {"sshPorts": [22]}}}, "'sshPorts' not allowed"),
        ({"serviceAccount": {"annotations": {"a": "b"}}}, "'annotations' not allowed"),
        ({"serviceAccount": {"bot": {"annotations": {"a": "b"}}}}, "'annotations' not allowed"),
        (
            {"clusters": [{**CLUSTERS[0], "ssh": {"key": INLINE["ssh"]["privateKey"]}}]},
            "/clusters/0/ssh/key",
        ),
        (
            {"clusters": [{**CLUSTERS[0], "kubeconfig": INLINE["kubeconfigs"]["files"]["prod-east"]}]},
            "/clusters/0/kubeconfig",
        ),
    ],
    ids=[
        "replicas-type",
        "platform-enum",
        "cluster-name",
        "redis-url",
        "misspelt-key",
        "redis-password-value",
        "redis-auth-password-value",
        "redis-maxmemory-unlimited",
        "old-egress-ports-key",
        "one-service-account-annotations",
        "bot-service-account-annotations",
        "private-key-in-clusters-file",
        "kubeconfig-in-clusters-file",
    ],
)
def test_schema_rejects_wrong_values(chart: helm.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
        chart.validate_schema({**MINIMAL, **values})


@pytest.mark.parametrize(
    ("destination", "cidr"),
    [
        ("ssh", "10.0.0.0"),
        ("ssh", "10.0.0.0/33"),
        ("api", "300.1.2.3/8"),
        ("api", "10.0.0/24"),
        ("https", "s3.amazonaws.com/32"),
        ("https", "10.0.0.0/8 "),
        ("slack", "fd00::/129"),
        ("slack", "fd00:::1/64"),
        ("redis", "10.0.0.0/-1"),
    ],
)
def test_schema_rejects_malformed_cidrs(chart: helm.Chart, destination: str, cidr: str) -> None:
    values = {**MINIMAL, "networkPolicy": {"egress": {destination: {"cidrs": [cidr]}}}}
    with pytest.raises(helm.HelmValuesError, match=re.escape(f"/networkPolicy/egress/{destination}/cidrs/0")):
        chart.validate_schema(values)
