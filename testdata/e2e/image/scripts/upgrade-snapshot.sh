#!/bin/sh
set -eu
. scripts/lib.sh
record "upgrade-snapshot from=$SEALPACK_FROM_VERSION to=$SEALPACK_TO_VERSION"
mkdir -p "$SEALPACK_SNAPSHOT_DIR"
echo "snapshot of $(cat "$OUT/server-version")" > "$SEALPACK_SNAPSHOT_DIR/etcd-$SEALPACK_FROM_VERSION.db"
