#!/bin/sh
set -eu
. scripts/lib.sh
# Tests make a node's upgrade fail here.
if [ -f "$OUT/fail-upgrade" ]; then echo "upgrade refused on $(hostname)" >&2; exit 1; fi
record "upgrade-node from=$SEALPACK_FROM_VERSION to=$SEALPACK_TO_VERSION"
. scripts/upgrade-common.sh
