#!/usr/bin/env bash
### Created by cluster-etcd-operator. DO NOT edit.
# Twin host copy of OpenShift 4.12-4.17 cluster-backup.sh: etcd snapshot of the local member plus
# the latest static pod resources of kube-apiserver, kube-controller-manager, kube-scheduler and etcd.
set -o errexit
set -o pipefail
set -o errtrace

if [[ $EUID -ne 0 ]]; then
  echo "This script must be run as root"
  exit 1
fi

function usage() {
  echo 'Path to backup dir required: ./cluster-backup.sh [--force] <path-to-backup-dir>'
  exit 1
}

IS_DIRTY=""
if [ "$1" == "--force" ]; then
  IS_DIRTY="__POSSIBLY_DIRTY__"
  shift
fi

if [ -z "$1" ] || [ -f "$1" ]; then
  usage
fi
if [ ! -d "$1" ]; then
  mkdir -p "$1"
fi

function backup_latest_kube_static_resources() {
  local backup_tar_file="$1"
  local dirs=()
  local resource manifest latest
  for resource in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    manifest="/etc/kubernetes/manifests/${resource}-pod.yaml"
    if [ ! -f "${manifest}" ]; then
      echo "error finding manifests for the ${resource} pod. please check if it is running."
      exit 1
    fi
    latest=$(grep -o "/etc/kubernetes/static-pod-resources/${resource}-pod-[0-9]*" "${manifest}" | head -1 || true)
    if [ -z "${latest}" ]; then
      echo "error finding static-pod-resources for the ${resource} pod. please check if it is running."
      exit 1
    fi
    if [ -z "${IS_DIRTY}" ]; then
      check_if_operator_is_progressing "${resource}"
    fi
    echo "found latest ${resource}: ${latest}"
    dirs+=("${latest#/etc/kubernetes/}")
  done
  tar -cpzf "${backup_tar_file}" -C /etc/kubernetes "${dirs[@]}"
  chmod 600 "${backup_tar_file}"
}

# The real script asks the API whether an operator is progressing and fails when it cannot tell.
# The twin has no API server yet: the check runs only when oc/kubectl exists on the host and the
# localhost kubeconfig's server answers; otherwise it says so and goes on.
function check_if_operator_is_progressing() {
  local resource="$1"
  local client server progressing
  if [ ! -f "${KUBECONFIG}" ]; then
    echo "Valid kubeconfig is not found in kube-apiserver-certs. Exiting!"
    exit 1
  fi
  client=$(command -v oc || command -v kubectl || true)
  if [ -z "${client}" ]; then
    echo "twin: no oc or kubectl on this host, skipping the check that the ${resource} operator is not progressing"
    return 0
  fi
  server=$(awk '$1 == "server:" {print $2; exit}' "${KUBECONFIG}")
  if ! curl -sk --max-time 2 -o /dev/null "${server}/readyz"; then
    echo "twin: the API server at ${server} does not answer, skipping the check that the ${resource} operator is not progressing"
    return 0
  fi
  progressing=$("${client}" --kubeconfig "${KUBECONFIG}" get co "${resource}" \
    -o jsonpath='{.status.conditions[?(@.type=="Progressing")].status}' 2>/dev/null || true)
  if [ -z "${progressing}" ]; then
    echo "Could not find the status of the ${resource}. Check if the API server is running. Pass the --force flag to skip checks."
    exit 1
  fi
  if [ "${progressing}" != "False" ]; then
    echo "Currently the ${resource} operator is progressing. A reliable backup requires that a rollout is not in progress.  Aborting!"
    exit 1
  fi
}

function source_required_dependency() {
  local path="$1"
  if [ ! -f "${path}" ]; then
    echo "required dependencies not found, please ensure this script is run on a node with a functional etcd static pod"
    exit 1
  fi
  # shellcheck disable=SC1090
  source "${path}"
}

BACKUP_DIR="$1"
DATESTRING=$(date "+%F_%H%M%S")
BACKUP_TAR_FILE=${BACKUP_DIR}/static_kuberesources_${DATESTRING}${IS_DIRTY}.tar.gz
SNAPSHOT_FILE="${BACKUP_DIR}/snapshot_${DATESTRING}${IS_DIRTY}.db"
BACKUP_RESOURCE_LIST=("kube-apiserver-pod" "kube-controller-manager-pod" "kube-scheduler-pod" "etcd-pod")

trap 'rm -f ${BACKUP_TAR_FILE} ${SNAPSHOT_FILE}' ERR

source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env
source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd-common-tools

# etcd.env names the certificates as the etcd pod mounts them; on the host they are elsewhere.
if [ ! -f "${ETCDCTL_CACERT}" ]; then
  echo "Certificate ${ETCDCTL_CACERT} is missing. Checking in different directory"
  export ETCDCTL_CACERT=${ETCDCTL_CACERT/static-pod-certs/static-pod-resources\/etcd-certs}
  export ETCDCTL_CERT=${ETCDCTL_CERT/static-pod-certs/static-pod-resources\/etcd-certs}
  export ETCDCTL_KEY=${ETCDCTL_KEY/static-pod-certs/static-pod-resources\/etcd-certs}
  if [ ! -f "${ETCDCTL_CACERT}" ]; then
    echo "Certificate ${ETCDCTL_CACERT} is also missing in the second directory. Exiting!"
    exit 1
  else
    echo "Certificate ${ETCDCTL_CACERT} found!"
  fi
fi

backup_latest_kube_static_resources "${BACKUP_TAR_FILE}"

dl_etcdctl

# The snapshot comes from this host's member only.
env ETCDCTL_ENDPOINTS="https://${NODE_NODE_ENVVAR_NAME_IP}:2379" etcdctl snapshot save "${SNAPSHOT_FILE}"

check_snapshot_status "${SNAPSHOT_FILE}"
echo "snapshot db and kube resources are successfully saved to ${BACKUP_DIR}"
