"""The Kubernetes API of a cluster, through the kubernetes client and the cluster's kubeconfig.

Calls go through procedures.kube.call, which retries transient errors within the step's bound and
turns an API that stays down (expected during a restore) into a plain message.
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
    # urllib3 would retry a POST whose answer was lost as blindly as a GET: procedures.kube decides
    # what is retried, and for how long.
    configuration.retries = 0
    return client.ApiClient(configuration)
