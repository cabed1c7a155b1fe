"""The twin's Kubernetes API server: HTTPS REST over objects stored in the twin's etcd."""

from .operators import Timing
from .seed import ClusterFacts, NodeFacts, seed_cluster
from .server import KubeApiServer

__all__ = ["ClusterFacts", "KubeApiServer", "NodeFacts", "Timing", "seed_cluster"]
