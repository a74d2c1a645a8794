#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# upgrade-master0.sh (the first master): kubeadm upgrade apply. kubeadm checks the versions, pulls
# the new control-plane images (the embedded registry serves the new bundle's through containerd's
# mirror), replaces etcd, the API server, the controller manager and the scheduler one static pod
# at a time, putting the old manifest back when a new pod does not come up, then upgrades
# kube-proxy, CoreDNS and this node's kubelet configuration. Then the new kubelet.
. scripts/upgrade.sh
upgrade_host_files
export KUBECONFIG=/etc/kubernetes/admin.conf
v=$(kubectl version -o json 2>/dev/null | tr -d ' \n' | sed -n 's/.*"serverVersion":{[^}]*"gitVersion":"\([^"]*\)".*/\1/p')
if [ "$v" = "$K8S_VERSION" ]; then
  log "the control plane runs $K8S_VERSION already"
else
  log "kubeadm upgrade apply $K8S_VERSION (from ${v:-$SEALPACK_FROM_VERSION})"
  kubeadm upgrade apply "$K8S_VERSION" --yes --ignore-preflight-errors=SystemVerification
fi
restart_kubelet
wait_api
root_kubeconfig
