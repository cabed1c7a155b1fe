#!/usr/bin/env bash
### Created by cluster-etcd-operator. DO NOT edit.
# Twin host copy of OpenShift 4.12-4.17 cluster-restore.sh: stops the static pods, moves the etcd
# data dir aside, starts a single-member etcd restored from the snapshot through the restore-etcd
# pod, and puts back the kube-apiserver, kube-controller-manager and kube-scheduler manifests.
#
# ETCD_RESTORE_SKIP_MOVE_CP_STATIC_PODS  leave the kube-apiserver/-controller-manager/-scheduler pods alone
# ETCD_ETCDCTL_RESTORE                   restore with etcdctl here instead of the restore-etcd pod
# ETCD_ETCDCTL_RESTORE_ENABLE_BUMP       make the restore pod bump revisions by 1e9 and mark them compacted
set -o errexit
set -o pipefail
set -o errtrace

if [[ $EUID -ne 0 ]]; then
  echo "This script must be run as root"
  exit 1
fi

function source_required_dependency() {
  local path="$1"
  if [ ! -f "${path}" ]; then
    echo "required dependencies not found, please ensure this script is run on a node with a functional etcd static pod"
    exit 1
  fi
  # shellcheck disable=SC1090
  source "${path}"
}

source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env
source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd-common-tools

function usage() {
  echo 'Path to the directory containing backup files is required: ./cluster-restore.sh <path-to-backup>'
  echo 'The backup directory is expected to be contain two files:'
  echo '        1. etcd snapshot'
  echo '        2. A copy of the Static POD resources at the time of backup'
  exit 1
}

if [ -z "$1" ] || [ ! -d "$1" ]; then
  usage
fi

function mv_static_pods() {
  local pod
  mkdir -p "${MANIFEST_STOPPED_DIR}"
  for pod in "$@"; do
    echo "...stopping ${pod}"
    [ ! -f "${MANIFEST_DIR}/${pod}" ] && continue
    mv "${MANIFEST_DIR}/${pod}" "${MANIFEST_STOPPED_DIR}"
  done
}

function wait_for_containers_to_stop() {
  local container
  for container in "$@"; do
    echo "Waiting for container ${container} to stop"
    while [[ -n $(crictl ps --label io.kubernetes.container.name="${container}" -q) ]]; do
      echo -n "."
      sleep 1
    done
    echo "complete"
  done
}

function restore_static_pods() {
  local backup_file="$1"
  shift
  local pod member
  for pod in "$@"; do
    member=$(tar -tvf "${backup_file}" --wildcards "*${pod}" 2>/dev/null | awk '{print $NF}' || true)
    if [ -z "${member}" ]; then
      echo "${pod} does not exist in ${backup_file}"
      exit 1
    fi
    echo "starting ${pod}"
    tar -xvf "${backup_file}" --strip-components=2 -C "${MANIFEST_DIR}/" "${member}"
  done
}

BACKUP_DIR="$1"
# shellcheck disable=SC2012
BACKUP_FILE=$(ls -vd "${BACKUP_DIR}"/static_kuberesources*.tar.gz 2>/dev/null | tail -1) || true
# shellcheck disable=SC2012
SNAPSHOT_FILE=$(ls -vd "${BACKUP_DIR}"/snapshot*.db 2>/dev/null | tail -1) || true
ETCD_STATIC_RESOURCES="kube-apiserver-pod.yaml kube-controller-manager-pod.yaml kube-scheduler-pod.yaml"

if [ ! -f "${SNAPSHOT_FILE}" ]; then
  echo "etcd snapshot ${SNAPSHOT_FILE} does not exist"
  exit 1
fi

dl_etcdctl
check_snapshot_status "${SNAPSHOT_FILE}"
ETCD_CLIENT="${ETCD_ETCDUTL_BIN:-${ETCD_ETCDCTL_BIN}}"

if [ -z "${ETCD_RESTORE_SKIP_MOVE_CP_STATIC_PODS}" ]; then
  # shellcheck disable=SC2086
  mv_static_pods ${ETCD_STATIC_RESOURCES}
  wait_for_containers_to_stop kube-controller-manager kube-apiserver kube-scheduler
fi

mv_static_pods etcd-pod.yaml
wait_for_containers_to_stop etcd etcdctl etcd-metrics etcd-readyz

mkdir -p "${ETCD_DATA_DIR_BACKUP}"
if [ -d "${ETCD_DATA_DIR}/member" ]; then
  if [ -d "${ETCD_DATA_DIR_BACKUP}/member" ]; then
    echo "removing previous backup ${ETCD_DATA_DIR_BACKUP}/member"
    rm -rf "${ETCD_DATA_DIR_BACKUP}/member"
  fi
  echo "Moving etcd data-dir ${ETCD_DATA_DIR}/member to ${ETCD_DATA_DIR_BACKUP}"
  mv "${ETCD_DATA_DIR}/member" "${ETCD_DATA_DIR_BACKUP}/"
fi

if [ -z "${ETCD_ETCDCTL_RESTORE}" ]; then
  # The restore pod reads the snapshot from the backup dir and does the restore itself.
  tar -C "${CONFIG_FILE_DIR}" -xzf "${BACKUP_FILE}" static-pod-resources
  cp -p "${SNAPSHOT_FILE}" "${ETCD_DATA_DIR_BACKUP}/snapshot.db"
  echo "starting restore-etcd static pod"
  if [ -n "${ETCD_ETCDCTL_RESTORE_ENABLE_BUMP}" ]; then
    sed 's/export ETCD_ETCDCTL_RESTORE_ENABLE_BUMP="false"/export ETCD_ETCDCTL_RESTORE_ENABLE_BUMP="true"/' \
      "${RESTORE_ETCD_POD_YAML}" > "${MANIFEST_DIR}/etcd-pod.yaml"
  else
    cp -p "${RESTORE_ETCD_POD_YAML}" "${MANIFEST_DIR}/etcd-pod.yaml"
  fi
else
  echo "removing etcd data dir..."
  rm -rf "${ETCD_DATA_DIR}"
  mkdir -p "${ETCD_DATA_DIR}"
  echo "starting snapshot restore through etcdctl..."
  if ! ${ETCD_CLIENT} snapshot restore "${SNAPSHOT_FILE}" --data-dir="${ETCD_DATA_DIR}"; then
    echo "Snapshot restore failed. Aborting!"
    exit 1
  fi
  echo "restoring old etcd pod to start etcd again"
  mv "${MANIFEST_STOPPED_DIR}/etcd-pod.yaml" "${MANIFEST_DIR}/etcd-pod.yaml"
fi

if [ -z "${ETCD_RESTORE_SKIP_MOVE_CP_STATIC_PODS}" ]; then
  # shellcheck disable=SC2086
  restore_static_pods "${BACKUP_FILE}" ${ETCD_STATIC_RESOURCES}
fi
