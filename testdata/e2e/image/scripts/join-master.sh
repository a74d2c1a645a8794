#!/bin/sh
set -eu
. scripts/lib.sh
record "join-master token=$(cat "$SEALPACK_SHARE/join-token") cert-key=$(cat "$SEALPACK_SHARE/control-plane/cert-key")"
# Every control plane has the admin kubeconfig, as kubeadm join --control-plane leaves it.
printf 'apiVersion: v1\nkind: Config\n# e2e admin kubeconfig of %s\n' "$(hostname)" > "$OUT/kubeconfig"
