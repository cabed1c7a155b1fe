"""Reading the cluster's version and its cluster-wide proxy from the API (config.openshift.io/v1)."""

from __future__ import annotations

from kubernetes import client

from procedures.i18n import msg
from procedures.kube import call
from procedures.steps import StepContext, StepFailed

CONFIG = ("config.openshift.io", "v1")
PROXY_VARS = {"httpProxy": "HTTP_PROXY", "httpsProxy": "HTTPS_PROXY", "noProxy": "NO_PROXY"}


def cluster_version(ctx: StepContext, api: client.CustomObjectsApi) -> str:
    """The version the cluster runs: ClusterVersion `version`, status.desired.version."""
    obj = call(ctx.cluster, api.get_cluster_custom_object, *CONFIG, "clusterversions", "version")
    version = (obj.get("status") or {}).get("desired", {}).get("version", "")
    if not version:
        raise StepFailed(msg("kube.no_version", cluster=ctx.cluster.name))
    return str(version)


def proxy_env(ctx: StepContext, api: client.CustomObjectsApi) -> dict[str, str]:
    """The cluster-wide proxy as the environment the backup and restore scripts need exported."""
    obj = call(ctx.cluster, api.get_cluster_custom_object, *CONFIG, "proxies", "cluster")
    status = obj.get("status") or {}
    return {var: str(status[field]) for field, var in PROXY_VARS.items() if status.get(field)}
