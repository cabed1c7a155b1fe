"""Static pod manifests of a twin host, shaped like OpenShift's (JSON pods, revision dirs, restore pod YAML,
keepalived.yaml as the machine-config operator writes it).

The kubelet simulator runs the `command` of containers named `etcd` for real (with the pod's volume
mounts translated to host paths) and keeps every other container as a simulated one.
"""

from __future__ import annotations

import json

from sim.twin.layout import ETCD_IMAGE, KEEPALIVED_IMAGE, KUBE_IMAGE, HostSpec, TwinSpec

CERTS_IN_POD = "/etc/kubernetes/static-pod-certs"
ETCD_REVISION_BOOTSTRAP = 1
ETCD_REVISION = 2
REVISIONS = {"kube-apiserver": 7, "kube-controller-manager": 6, "kube-scheduler": 5}
COMPONENT_CONTAINERS = {
    "kube-apiserver": (
        "kube-apiserver",
        "kube-apiserver-cert-syncer",
        "kube-apiserver-cert-regeneration-controller",
        "kube-apiserver-insecure-readyz",
        "kube-apiserver-check-endpoints",
    ),
    "kube-controller-manager": (
        "kube-controller-manager",
        "cluster-policy-controller",
        "kube-controller-manager-cert-syncer",
        "kube-controller-manager-recovery-controller",
    ),
    "kube-scheduler": ("kube-scheduler", "kube-scheduler-cert-syncer", "kube-scheduler-recovery-controller"),
}
NAMESPACES = {
    "etcd": "openshift-etcd",
    "kube-apiserver": "openshift-kube-apiserver",
    "kube-controller-manager": "openshift-kube-controller-manager",
    "kube-scheduler": "openshift-kube-scheduler",
}


def etcd_env(spec: TwinSpec) -> dict[str, str]:
    """The variables of etcd-scripts/etcd.env: the same on every host, like the ConfigMap it comes from."""
    env = {
        "ETCDCTL_API": "3",
        "ETCDCTL_CACERT": f"{CERTS_IN_POD}/configmaps/etcd-serving-ca/ca-bundle.crt",
        "ETCDCTL_CERT": f"{CERTS_IN_POD}/secrets/etcd-client/tls.crt",
        "ETCDCTL_KEY": f"{CERTS_IN_POD}/secrets/etcd-client/tls.key",
        "ETCDCTL_ENDPOINTS": ",".join(f"https://{h.address}:2379" for h in spec.hosts),
        "ETCD_IMAGE": ETCD_IMAGE,
        "ALL_ETCD_ENDPOINTS": ",".join(f"https://{h.address}:2379" for h in spec.hosts),
        # Small on purpose: the twin's etcd holds test data, and three members share a 2-core machine.
        "ETCD_HEARTBEAT_INTERVAL": "100",
        "ETCD_ELECTION_TIMEOUT": "1000",
        "ETCD_QUOTA_BACKEND_BYTES": "268435456",
        "ETCD_SNAPSHOT_COUNT": "1000",
    }
    for host in spec.hosts:
        env[f"NODE_{host.key}_IP"] = host.address
        env[f"NODE_{host.key}_ETCD_NAME"] = host.name
        env[f"NODE_{host.key}_ETCD_URL_HOST"] = host.address
    return env


def render_env_file(env: dict[str, str]) -> str:
    return "".join(f'export {k}="{v}"\n' for k, v in env.items())


def _volumes(volumes: dict[str, str]) -> list[dict[str, object]]:
    return [{"name": name, "hostPath": {"path": path}} for name, path in volumes.items()]


def _mounts(mounts: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "mountPath": path} for name, path in mounts.items()]


def _pod(
    name: str, namespace: str, labels: dict[str, str], containers: list[dict], volumes: dict[str, str]
) -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "creationTimestamp": None},
        "spec": {
            "volumes": _volumes(volumes),
            "containers": containers,
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
        },
        "status": {},
    }


def _etcd_run_script(host: HostSpec, spec: TwinSpec) -> str:
    initial = ",".join(f"{h.name}=https://{h.address}:2380" for h in spec.hosts)
    certs = f"{CERTS_IN_POD}/secrets/etcd-all-certs"
    return f"""#!/bin/sh
set -euo pipefail
export ETCD_NAME=${{NODE_{host.key}_ETCD_NAME}}
export ETCD_INITIAL_CLUSTER="{initial}"
env | grep ETCD | grep -v NODE | grep -v CERT | grep -v KEY | sort

# As discover-etcd-initial-cluster does: a member the cluster knows as started must not come back
# with an empty data dir (its disk was lost); it has to be removed and added again.
if [ "${{ETCD_INITIAL_CLUSTER_STATE}}" = "existing" ] && [ ! -d /var/lib/etcd/member ]; then
  members=$(etcdctl --dial-timeout=1s --command-timeout=3s member list 2>/dev/null || true)
  if echo "${{members}}" | grep -q ", started, ${{ETCD_NAME}}, "; then
    echo "member \"https://${{NODE_{host.key}_IP}}:2380\" dataDir has been destroyed" \\
      "and must be removed from the cluster"
    exit 1
  fi
  # A fresh member joins with the membership the cluster has (the operator added it as a learner).
  if ! echo "${{members}}" | grep -q ", https://${{NODE_{host.key}_IP}}:2380, "; then
    echo "member https://${{NODE_{host.key}_IP}}:2380 is not in the cluster yet;" \\
      "waiting for the etcd operator to add it"
    exit 1
  fi
  ETCD_INITIAL_CLUSTER=$(echo "${{members}}" | awk -F', ' -v me="${{ETCD_NAME}}" \\
    '{{ name = ($3 == "") ? me : $3; printf "%s%s=%s", sep, name, $4; sep = "," }}')
  export ETCD_INITIAL_CLUSTER
fi
set -x
exec etcd \\
  --logger=zap \\
  --log-level=info \\
  --initial-advertise-peer-urls=https://${{NODE_{host.key}_IP}}:2380 \\
  --cert-file={certs}/etcd-serving-{host.name}.crt \\
  --key-file={certs}/etcd-serving-{host.name}.key \\
  --trusted-ca-file={CERTS_IN_POD}/configmaps/etcd-serving-ca/ca-bundle.crt \\
  --client-cert-auth=true \\
  --peer-cert-file={certs}/etcd-peer-{host.name}.crt \\
  --peer-key-file={certs}/etcd-peer-{host.name}.key \\
  --peer-trusted-ca-file={CERTS_IN_POD}/configmaps/etcd-peer-client-ca/ca-bundle.crt \\
  --peer-client-cert-auth=true \\
  --advertise-client-urls=https://${{NODE_{host.key}_IP}}:2379 \\
  --listen-client-urls=https://${{NODE_{host.key}_IP}}:2379 \\
  --listen-peer-urls=https://${{NODE_{host.key}_IP}}:2380 \\
  --listen-metrics-urls=http://${{NODE_{host.key}_IP}}:9978
"""


def _etcd_sidecar(name: str, host: HostSpec, spec: TwinSpec, command: str) -> dict:
    certs = f"{CERTS_IN_POD}/secrets/etcd-all-certs"
    env = {
        "ETCDCTL_API": "3",
        "ETCDCTL_CACERT": f"{CERTS_IN_POD}/configmaps/etcd-serving-ca/ca-bundle.crt",
        "ETCDCTL_CERT": f"{certs}/etcd-peer-{host.name}.crt",
        "ETCDCTL_KEY": f"{certs}/etcd-peer-{host.name}.key",
        "ETCDCTL_ENDPOINTS": ",".join(f"https://{h.address}:2379" for h in spec.hosts),
        "ETCD_IMAGE": ETCD_IMAGE,
    }
    return {
        "name": name,
        "image": ETCD_IMAGE,
        "command": ["/bin/bash", "-c", command],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "volumeMounts": _mounts(
            {"cert-dir": CERTS_IN_POD, "data-dir": "/var/lib/etcd", "log-dir": "/var/log/etcd"}
        ),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "imagePullPolicy": "IfNotPresent",
    }


def etcd_pod(host: HostSpec, spec: TwinSpec, revision: int) -> dict:
    state = "new" if revision == ETCD_REVISION_BOOTSTRAP else "existing"
    env = {**etcd_env(spec), "ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_INITIAL_CLUSTER_STATE": state}
    env["ETCDCTL_ENDPOINTS"] = env["ALL_ETCD_ENDPOINTS"]
    etcd = {
        "name": "etcd",
        "image": ETCD_IMAGE,
        "command": ["/bin/bash", "-c", _etcd_run_script(host, spec)],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"containerPort": 2379, "name": "etcd", "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": 2380}, "periodSeconds": 5},
        "volumeMounts": _mounts(
            {
                "static-pod-dir": "/etc/kubernetes/manifests",
                "resource-dir": "/etc/kubernetes/static-pod-resources",
                "cert-dir": CERTS_IN_POD,
                "data-dir": "/var/lib/etcd",
                "log-dir": "/var/log/etcd",
            }
        ),
        "securityContext": {"privileged": True},
    }
    containers = [
        _etcd_sidecar("etcdctl", host, spec, "trap TERM INT; sleep infinity & wait"),
        etcd,
        _etcd_sidecar(
            "etcd-metrics", host, spec, "exec etcd grpc-proxy start --listen-addr=https://0.0.0.0:9979"
        ),
        _etcd_sidecar("etcd-readyz", host, spec, "exec cluster-etcd-operator readyz --listen-port=9980"),
        _etcd_sidecar("etcd-health-monitor", host, spec, "exec cluster-etcd-operator monitor"),
    ]
    volumes = {
        "static-pod-dir": "/etc/kubernetes/manifests",
        "resource-dir": f"/etc/kubernetes/static-pod-resources/etcd-pod-{revision}",
        "cert-dir": "/etc/kubernetes/static-pod-resources/etcd-certs",
        "data-dir": "/var/lib/etcd",
        "log-dir": "/var/log/etcd",
        "usr-local-bin": "/usr/local/bin",
    }
    labels = {"app": "etcd", "k8s-app": "etcd", "etcd": "true", "revision": str(revision)}
    return _pod("etcd", "openshift-etcd", labels, containers, volumes)


def component_pod(component: str, revision: int | None = None) -> dict:
    revision = revision or REVISIONS[component]
    containers = [
        {
            "name": name,
            "image": KUBE_IMAGE,
            "command": ["/bin/bash", "-ec"],
            "args": [
                f"exec {name} --config=/etc/kubernetes/static-pod-resources/configmaps/config/config.yaml"
            ],
            "volumeMounts": _mounts(
                {
                    "resource-dir": "/etc/kubernetes/static-pod-resources",
                    "cert-dir": "/etc/kubernetes/static-pod-certs",
                }
            ),
        }
        for name in COMPONENT_CONTAINERS[component]
    ]
    volumes = {
        "resource-dir": f"/etc/kubernetes/static-pod-resources/{component}-pod-{revision}",
        "cert-dir": f"/etc/kubernetes/static-pod-resources/{component}-certs",
    }
    labels = {
        "app": component.replace("kube-", "openshift-kube-"),
        component: "true",
        "revision": str(revision),
    }
    return _pod(component, NAMESPACES[component], labels, containers, volumes)


def keepalived_yaml(spec: TwinSpec) -> str:
    """keepalived.yaml as the machine-config operator writes it on an on-prem (bare-metal) platform.

    YAML, not JSON: the VIPs are given to runtimecfg and dynkeepalived as separate command items, the
    flag (`--api-vips`, 4.12+) then the addresses joined with commas, so nothing in the file reads
    `--api-vip X` on one line. The keepalived container itself runs a shell script.
    """
    return f"""kind: Pod
apiVersion: v1
metadata:
  name: keepalived
  namespace: openshift-kni-infra
  creationTimestamp:
  deletionGracePeriodSeconds: 65
  labels:
    app: kni-infra-vrrp
spec:
  volumes:
  - name: resource-dir
    hostPath:
      path: "/etc/kubernetes/static-pod-resources/keepalived"
  - name: kubeconfig
    hostPath:
      path: "/etc/kubernetes"
  - name: conf-dir
    hostPath:
      path: "/etc/keepalived"
  initContainers:
  - name: render-config-keepalived
    image: {KEEPALIVED_IMAGE}
    command:
    - runtimecfg
    - render
    - "/etc/kubernetes/kubeconfig"
    - "--api-vips"
    - "{spec.api_vip}"
    - "--ingress-vips"
    - "{spec.ingress_vip}"
    - "/config"
    - "--out-dir"
    - "/etc/keepalived"
    volumeMounts:
    - name: kubeconfig
      mountPath: "/etc/kubernetes"
    - name: resource-dir
      mountPath: "/config"
    - name: conf-dir
      mountPath: "/etc/keepalived"
  containers:
  - name: keepalived
    securityContext:
      privileged: true
    image: {KEEPALIVED_IMAGE}
    command:
    - /bin/bash
    - -c
    - |
      #/bin/bash
      set -ex
      /usr/sbin/keepalived -f /etc/keepalived/keepalived.conf --dont-fork --vrrp --log-detail --log-console
    volumeMounts:
    - name: conf-dir
      mountPath: "/etc/keepalived"
    terminationMessagePolicy: FallbackToLogsOnError
  - name: keepalived-monitor
    securityContext:
      privileged: true
    image: {KEEPALIVED_IMAGE}
    command:
    - dynkeepalived
    - "/var/lib/kubelet/kubeconfig"
    - "/config/keepalived.conf.tmpl"
    - "/etc/keepalived/keepalived.conf"
    - "--api-vips"
    - "{spec.api_vip}"
    - "--ingress-vips"
    - "{spec.ingress_vip}"
    volumeMounts:
    - name: resource-dir
      mountPath: "/config"
    - name: conf-dir
      mountPath: "/etc/keepalived"
  hostNetwork: true
  tolerations:
  - operator: Exists
  priorityClassName: system-node-critical
status: {{}}
"""


def to_json(pod: dict) -> str:
    return json.dumps(pod, indent=2) + "\n"


def restore_pod_yaml(host: HostSpec) -> str:
    """restore-etcd-pod/pod.yaml as the ConfigMap puts it on a host: YAML, with this node's NODE_* values.

    The manual restore (5.4.2.3) greps this file for `export ETCD_NAME` and the `value:` line after the
    matching env name, so the layout of those lines matters.
    """
    certs = f"{CERTS_IN_POD}/secrets/etcd-all-certs"
    key = host.key
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: openshift-etcd
  labels:
    app: etcd
    k8s-app: etcd
    etcd: "true"
    revision: "REVISION"
spec:
  containers:
  - name: etcd
    image: {ETCD_IMAGE}
    imagePullPolicy: IfNotPresent
    terminationMessagePolicy: FallbackToLogsOnError
    command:
      - /bin/bash
      - -c
      - |
        #!/bin/sh
        set -euo pipefail

        export ETCD_NAME=${{NODE_{key}_ETCD_NAME}}
        export ETCD_INITIAL_CLUSTER="${{ETCD_NAME}}=https://${{NODE_{key}_ETCD_URL_HOST}}:2380"
        env | grep ETCD | grep -v NODE
        export ETCD_NODE_PEER_URL=https://${{NODE_{key}_ETCD_URL_HOST}}:2380
        export ETCD_ETCDCTL_RESTORE_ENABLE_BUMP="false"

        # the restore only starts from an empty data dir
        rm -f /var/lib/etcd/etcd_perf*
        if [ -n "$(ls -A /var/lib/etcd)" ]; then
          echo "please delete the contents of data directory before restoring," \\
            "running the restore script will do this for you"
          exit 1
        fi

        # the snapshot must be in place and no longer growing
        if [ ! -f /var/lib/etcd-backup/snapshot.db ]; then
          echo "please make a copy of the snapshot db file," \\
            "then move that copy to /var/lib/etcd-backup/snapshot.db"
          exit 1
        fi
        filesize=$(stat --format=%s /var/lib/etcd-backup/snapshot.db)
        sleep 5
        if [ "$filesize" != "$(stat --format=%s /var/lib/etcd-backup/snapshot.db)" ]; then
          echo "file size has changed since last 5 seconds, retry sometime after copying is complete"
          exit 1
        fi

        BUMP_ARGS=""
        if [ "$ETCD_ETCDCTL_RESTORE_ENABLE_BUMP" = "true" ]; then
          BUMP_ARGS="--bump-revision 1000000000 --mark-compacted"
        fi

        UUID=$(uuidgen)
        echo "restoring to a single node cluster"
        ETCDCTL_API=3 etcdctl snapshot restore /var/lib/etcd-backup/snapshot.db \\
          --name $ETCD_NAME \\
          --initial-cluster=$ETCD_INITIAL_CLUSTER \\
          --initial-cluster-token "openshift-etcd-${{UUID}}" \\
          --initial-advertise-peer-urls $ETCD_NODE_PEER_URL \\
          --data-dir="/var/lib/etcd/restore-${{UUID}}" $BUMP_ARGS

        mv /var/lib/etcd/restore-${{UUID}}/* /var/lib/etcd/
        rmdir /var/lib/etcd/restore-${{UUID}}
        rm /var/lib/etcd-backup/snapshot.db

        set -x
        exec etcd \\
          --logger=zap \\
          --log-level=info \\
          --initial-advertise-peer-urls=https://${{NODE_{key}_IP}}:2380 \\
          --cert-file={certs}/etcd-serving-{host.name}.crt \\
          --key-file={certs}/etcd-serving-{host.name}.key \\
          --trusted-ca-file={CERTS_IN_POD}/configmaps/etcd-serving-ca/ca-bundle.crt \\
          --client-cert-auth=true \\
          --peer-cert-file={certs}/etcd-peer-{host.name}.crt \\
          --peer-key-file={certs}/etcd-peer-{host.name}.key \\
          --peer-trusted-ca-file={CERTS_IN_POD}/configmaps/etcd-peer-client-ca/ca-bundle.crt \\
          --peer-client-cert-auth=true \\
          --advertise-client-urls=https://${{NODE_{key}_IP}}:2379 \\
          --listen-client-urls=https://${{NODE_{key}_IP}}:2379 \\
          --listen-peer-urls=https://${{NODE_{key}_IP}}:2380 \\
          --listen-metrics-urls=http://${{NODE_{key}_IP}}:9978
    env:
    - name: "NODE_{key}_ETCD_NAME"
      value: "{host.name}"
    - name: "NODE_{key}_ETCD_URL_HOST"
      value: "{host.address}"
    - name: "NODE_{key}_IP"
      value: "{host.address}"
    - name: "ETCD_DATA_DIR"
      value: "/var/lib/etcd"
    - name: "ETCD_INITIAL_CLUSTER_STATE"
      value: "new"
    - name: "ETCD_QUOTA_BACKEND_BYTES"
      value: "268435456"
    - name: "ETCD_SNAPSHOT_COUNT"
      value: "1000"
    ports:
    - containerPort: 2379
      name: etcd
      protocol: TCP
    readinessProbe:
      tcpSocket:
        port: 2380
      periodSeconds: 5
    securityContext:
      privileged: true
    volumeMounts:
    - mountPath: /etc/kubernetes/manifests
      name: static-pod-dir
    - mountPath: {CERTS_IN_POD}
      name: cert-dir
    - mountPath: /var/lib/etcd/
      name: data-dir
    - mountPath: /var/lib/etcd-backup/
      name: backup-dir
  hostNetwork: true
  priorityClassName: system-node-critical
  tolerations:
  - operator: "Exists"
  volumes:
  - hostPath:
      path: /etc/kubernetes/manifests
    name: static-pod-dir
  - hostPath:
      path: /etc/kubernetes/static-pod-resources/etcd-certs
    name: cert-dir
  - hostPath:
      path: /var/lib/etcd
      type: ""
    name: data-dir
  - hostPath:
      path: /var/lib/etcd-backup
      type: ""
    name: backup-dir
"""
