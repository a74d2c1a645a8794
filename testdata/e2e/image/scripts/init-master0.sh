#!/bin/bash
# Executable, with a bash interpreter line: the engine must run it with bash.
set -euo pipefail
. scripts/lib.sh
if [[ -n "${BASH_VERSION:-}" ]]; then shell=bash; else shell=other; fi
record "init-master0 via $shell"
echo "token-$(hostname)" > "$SEALPACK_SHARE/join-token"
# only masters receive the share's control-plane part
mkdir -p -m 0700 "$SEALPACK_SHARE/control-plane"
echo "key-$(hostname)" > "$SEALPACK_SHARE/control-plane/cert-key"
printf 'apiVersion: v1\nkind: Config\n# e2e admin kubeconfig of %s\n' "$(hostname)" > "$OUT/kubeconfig"
# What the stand-in kubectl reports: the cluster's hosts and the version it runs.
echo "$SEALPACK_MASTERS $SEALPACK_NODES" > "$OUT/cluster-hosts"
echo "$TEST_VERSION" > "$OUT/server-version"
echo "$TEST_VERSION" > "$OUT/installed-version"
