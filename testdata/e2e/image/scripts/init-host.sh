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
# Pull an image from the cluster's registry over TLS, trusting only its CA.
if [ -n "${TEST_IMAGE:-}" ]; then
  repo=${TEST_IMAGE%:*} tag=${TEST_IMAGE##*:}
  url=https://$SEALPACK_REGISTRY/v2/$repo
  curl -sSf --cacert "$SEALPACK_REGISTRY_CA" -o "$OUT/manifest.json" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "$url/manifests/$tag"
  layer=$(grep -o 'sha256:[a-f0-9]\{64\}' "$OUT/manifest.json" | tail -1)
  curl -sSf --cacert "$SEALPACK_REGISTRY_CA" -o "$OUT/layer" "$url/blobs/$layer"
  echo "${layer#sha256:}  $OUT/layer" | sha256sum -c --status
  record "pulled $TEST_IMAGE layer $layer"
fi
echo "init-host done on $(hostname)"
