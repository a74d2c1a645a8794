# shellcheck shell=bash
# upgrade.sh: shared by upgrade-master0.sh, upgrade-master.sh and upgrade-node.sh (sourced; the
# working directory is the new rootfs). The engine drains the host before the script and
# uncordons it after, once the script succeeded (docs/UPGRADE.md).
. scripts/lib.sh
[ -n "${SEALPACK_FROM_VERSION:-}" ] && [ -n "${SEALPACK_TO_VERSION:-}" ] || die "run by the installer's upgrade: SEALPACK_FROM_VERSION and SEALPACK_TO_VERSION are unset"
[ "$SEALPACK_TO_VERSION" = "$K8S_VERSION" ] || die "this image brings $K8S_VERSION, the engine asks for $SEALPACK_TO_VERSION"
[ -f /etc/kubernetes/kubelet.conf ] || die "$(hostname) is not part of the cluster (no /etc/kubernetes/kubelet.conf): join it first"

# upgrade_host_files: the new image's host setup, as at install (binaries, containerd's
# configuration and units, kernel settings): init-host.sh is safe to run again. A changed
# containerd is restarted there; running containers keep running (their shims stay). The new
# kubelet binary is in place but runs only from restart_kubelet on.
upgrade_host_files() {
  log "host files of $K8S_VERSION (init-host.sh)"
  bash scripts/init-host.sh
}

# restart_kubelet: the kubelet of the new version, with the configuration kubeadm upgrade wrote
restart_kubelet() {
  systemctl daemon-reload
  systemctl restart kubelet
  local i
  for i in $(seq 60); do systemctl is-active -q kubelet && break; sleep 1; done
  systemctl is-active -q kubelet || die "the kubelet does not run after the upgrade: $(systemctl status kubelet --no-pager -n 20 2>&1)"
  log "kubelet $(kubelet --version 2>/dev/null | awk '{print $2}') running"
}

# wait_api: this master's API server answers (after its static pods were replaced)
wait_api() {
  local i
  for i in $(seq 180); do
    kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "the API server on $(hostname) is not ready 3 minutes after the upgrade"
}

# kubeadm_upgrade_node: a host's part of the upgrade the first master's `kubeadm upgrade apply`
# began: the new host files, `kubeadm upgrade node` (a master's static pods, etcd member included,
# and any host's kubelet configuration, of the version recorded in the cluster), the new kubelet
kubeadm_upgrade_node() {
  upgrade_host_files
  log "kubeadm upgrade node (to $K8S_VERSION)"
  kubeadm upgrade node --ignore-preflight-errors=SystemVerification
  restart_kubelet
}
