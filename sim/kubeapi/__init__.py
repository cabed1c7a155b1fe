"""The twin's Kubernetes API server: HTTPS REST over objects stored in the twin's etcd.

In-process use (what `drbot twin up` needs)::

    server = KubeApiServer(
        etcd_endpoints=["https://127.0.0.11:2379", "https://127.0.0.12:2379", "https://127.0.0.13:2379"],
        etcd_ca=CA_PEM, etcd_cert=CLIENT_CERT, etcd_key=CLIENT_KEY,
        state_dir=DIR / "kubeapi", host="127.0.0.10", port=6443,
        control_plane_up=lambda: any_kube_apiserver_container_running(),
    )
    server.start()                      # writes DIR/kubeapi/kubeconfig (CA + bearer token)
    server.seed(ClusterFacts(masters=[NodeFacts("master-0", "127.0.0.11"), ...], version="4.14.38"))
    server.file_bootstrap_csr("master-1")   # kubelet restarted with an empty /var/lib/kubelet/pki
    server.stop()

Out of process: `python -m sim.kubeapi --help` (same options as flags; --up-file / --up-command for
the control-plane probe; POST /sim/v1/nodes/NAME/bootstrap-csr and /sim/v1/nodes/NAME/ready hooks).
"""

from .operators import Timing
from .seed import ClusterFacts, NodeFacts, seed_cluster
from .server import KubeApiServer

__all__ = ["ClusterFacts", "KubeApiServer", "NodeFacts", "Timing", "seed_cluster"]
