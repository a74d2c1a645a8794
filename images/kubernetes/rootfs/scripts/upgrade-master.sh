#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# upgrade-master.sh (every other master, one at a time, after the first): kubeadm upgrade node
# replaces this master's static pods (etcd member included) with those of the version the first
# master's upgrade apply recorded in the cluster, then the new kubelet.
. scripts/upgrade.sh
kubeadm_upgrade_node
wait_api
root_kubeconfig
