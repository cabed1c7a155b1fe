"""The Kubernetes API of a cluster, through the kubernetes client and the cluster's kubeconfig.

Calls go through procedures.kube.call, which turns a down API (expected during a restore) into a
plain message.
"""

from __future__ import annotations

from kubernetes import client, config

from procedures.clusters import Cluster
from procedures.i18n import msg
from procedures.steps import StepFailed


def api_client(cluster: Cluster) -> client.ApiClient:
    if not cluster.kubeconfig:
        raise StepFailed(msg("kube.no_kubeconfig", cluster=cluster.name))
    try:
        configuration = client.Configuration()
        config.load_kube_config(config_file=cluster.kubeconfig, client_configuration=configuration)
    except (OSError, config.ConfigException) as error:
        raise StepFailed(
            msg("kube.bad_kubeconfig", cluster=cluster.name, path=cluster.kubeconfig, error=str(error))
        ) from None
    configuration.retries = 0
    return client.ApiClient(configuration)
