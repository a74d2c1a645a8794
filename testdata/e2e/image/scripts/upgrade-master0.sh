#!/bin/sh
set -eu
. scripts/lib.sh
# Tests make the control plane's upgrade fail here.
if [ -f "$OUT/fail-upgrade" ]; then echo "kubeadm upgrade apply failed on $(hostname)" >&2; exit 1; fi
record "upgrade-master0 from=$SEALPACK_FROM_VERSION to=$SEALPACK_TO_VERSION"
echo "$SEALPACK_TO_VERSION" > "$OUT/server-version"
. scripts/upgrade-common.sh
