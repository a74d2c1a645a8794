#!/bin/sh
set -eu
. scripts/lib.sh
record "init-host role=$SEALPACK_ROLE ip=$SEALPACK_HOST_IP master0=$SEALPACK_MASTER0_IP image=$TEST_IMAGE_ENV host=${TEST_HOST_ENV:-} cluster=${TEST_CLUSTER_ENV:-}"
echo "$SEALPACK_MASTERS" > "$OUT/masters"
echo "$SEALPACK_NODES" > "$OUT/nodes"
cp "$SEALPACK_ROOTFS/etc/payload.txt" "$OUT/payload.txt"
# A long-running process, as a container runtime would be.
if ! [ -f "$OUT/daemon.pid" ] || ! kill -0 "$(cat "$OUT/daemon.pid")" 2>/dev/null; then
  setsid sh -c 'exec sleep 100000' </dev/null >/dev/null 2>&1 &
  echo $! > "$OUT/daemon.pid"
fi
echo "init-host done on $(hostname)"
