#!/usr/bin/env bash
# Helpers shared by cluster-backup.sh and cluster-restore.sh (OpenShift 4.12-4.17 behaviour).

ASSET_DIR=/home/core/assets
CONFIG_FILE_DIR=/etc/kubernetes
MANIFEST_DIR="${CONFIG_FILE_DIR}/manifests"
MANIFEST_STOPPED_DIR="${ASSET_DIR}/manifests-stopped"
ETCD_DATA_DIR=/var/lib/etcd
ETCD_DATA_DIR_BACKUP=/var/lib/etcd-backup
RESTORE_ETCD_POD_YAML="${CONFIG_FILE_DIR}/static-pod-resources/etcd-certs/configmaps/restore-etcd-pod/pod.yaml"
ETCDCTL_BIN_DIR="${CONFIG_FILE_DIR}/static-pod-resources/bin"
KUBECONFIG="${CONFIG_FILE_DIR}/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig"
ETCD_ETCDCTL_BIN="etcdctl"
PATH=${PATH}:${ETCDCTL_BIN_DIR}
export KUBECONFIG ETCD_ETCDCTL_BIN PATH

# Copy etcdctl (and etcdutl when the image has one) out of the etcd image, else use one already here.
function dl_etcdctl {
  if [ -n "$(command -v podman)" ]; then
    local ctr mnt
    ctr=$(podman create --authfile=/var/lib/kubelet/config.json "${ETCD_IMAGE}")
    mnt=$(podman mount "${ctr}")
    [ -d "${ETCDCTL_BIN_DIR}" ] || mkdir -p "${ETCDCTL_BIN_DIR}"
    cp "${mnt}/bin/etcdctl" "${ETCDCTL_BIN_DIR}/"
    if [ -f "${mnt}/bin/etcdutl" ]; then
      cp "${mnt}/bin/etcdutl" "${ETCDCTL_BIN_DIR}/"
      export ETCD_ETCDUTL_BIN=etcdutl
    fi
    umount "${mnt}"
    podman rm "${ctr}"
    etcdctl version
    return 0
  fi
  if [ -n "$(command -v etcdctl)" ]; then
    echo "etcdctl is already installed"
    if [ -n "$(command -v etcdutl)" ]; then
      echo "etcdutl is already installed"
      export ETCD_ETCDUTL_BIN=etcdutl
    fi
    return 0
  fi
  echo "Could neither pull etcdctl nor find it locally in cache. Aborting!"
  return 1
}

function check_snapshot_status() {
  local snap="$1"
  local client="${ETCD_ETCDUTL_BIN:-${ETCD_ETCDCTL_BIN}}"
  if ! ${client} snapshot status "${snap}" -w json; then
    echo "Backup integrity verification failed. Backup appears corrupted. Aborting!"
    return 1
  fi
}
