#!/bin/bash
# Executable, with a bash interpreter line: the engine must run it with bash.
set -euo pipefail
. scripts/lib.sh
if [[ -n "${BASH_VERSION:-}" ]]; then shell=bash; else shell=other; fi
record "init-master0 via $shell"
echo "token-$(hostname)" > "$SEALPACK_SHARE/join-token"
printf 'apiVersion: v1\nkind: Config\n# e2e admin kubeconfig of %s\n' "$(hostname)" > "$OUT/kubeconfig"
