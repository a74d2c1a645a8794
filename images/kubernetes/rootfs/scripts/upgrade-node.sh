#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# upgrade-node.sh (every node, drained by the engine): kubeadm upgrade node (this node's kubelet
# configuration), the new containerd if it changed, then the new kubelet.
. scripts/upgrade.sh
kubeadm_upgrade_node
