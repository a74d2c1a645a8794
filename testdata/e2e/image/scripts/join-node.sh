#!/bin/sh
set -eu
. scripts/lib.sh
echo started >> "$OUT/join-node-started"
# Tests hold a node here to cut its SSH link mid-phase.
while [ -f "$OUT/hold" ]; do sleep 0.2; done
# Tests make a node fail its join here.
if [ -f "$OUT/fail-join" ]; then echo "join refused on $(hostname)" >&2; exit 1; fi
cp=absent; [ ! -e "$SEALPACK_SHARE/control-plane" ] || cp=present
record "join-node token=$(cat "$SEALPACK_SHARE/join-token") refreshed=$(cat "$SEALPACK_SHARE/refreshed") control-plane=$cp"
