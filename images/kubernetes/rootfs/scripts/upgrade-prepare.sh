#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# upgrade-prepare.sh (every host, once the new layers and images arrived, before the control plane
# changes): the new bundle's images into the running containerd. The first master's `kubeadm
# upgrade apply` rolls the new kube-proxy (and CoreDNS) out to every node at once, long before a
# node's own turn; a node that has them already starts them from local images instead of pulling
# them from the masters' registries, all nodes at the same moment.
. scripts/lib.sh
command -v ctr >/dev/null || die "no ctr on $(hostname): is this host part of the cluster?"
preload_images
