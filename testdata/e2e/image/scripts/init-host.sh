#!/bin/sh
set -eu
. scripts/lib.sh
record "init-host role=$SEALPACK_ROLE ip=$SEALPACK_HOST_IP master0=$SEALPACK_MASTER0_IP image=$TEST_IMAGE_ENV host=${TEST_HOST_ENV:-} cluster=${TEST_CLUSTER_ENV:-}"
record "images ${SEALPACK_IMAGES:-none}"
echo "$SEALPACK_MASTERS" > "$OUT/masters"
echo "$SEALPACK_NODES" > "$OUT/nodes"
cp "$SEALPACK_ROOTFS/etc/payload.txt" "$OUT/payload.txt"
# A long-running process, as a container runtime would be.
if ! [ -f "$OUT/daemon.pid" ] || ! kill -0 "$(cat "$OUT/daemon.pid")" 2>/dev/null; then
  setsid sh -c 'exec sleep 100000' </dev/null >/dev/null 2>&1 &
  echo $! > "$OUT/daemon.pid"
fi
# Pull an image from every registry of the cluster (every master serves one, under one CA) over
# TLS, trusting only that CA; one that does not answer (its master is down) is recorded as such,
# and at least one must serve it.
if [ -n "${TEST_IMAGE:-}" ]; then
  repo=${TEST_IMAGE%:*} tag=${TEST_IMAGE##*:} pulled=
  for reg in ${SEALPACK_REGISTRIES:-$SEALPACK_REGISTRY}; do
    url=https://$reg/v2/$repo
    if curl -sSf --max-time 10 --cacert "$SEALPACK_REGISTRY_CA" -o "$OUT/manifest.json" \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "$url/manifests/$tag"; then
      layer=$(grep -o 'sha256:[a-f0-9]\{64\}' "$OUT/manifest.json" | tail -1)
      curl -sSf --cacert "$SEALPACK_REGISTRY_CA" -o "$OUT/layer" "$url/blobs/$layer"
      echo "${layer#sha256:}  $OUT/layer" | sha256sum -c --status
      record "pulled $TEST_IMAGE layer $layer from $reg"; pulled=1
    else
      record "registry $reg does not answer"
    fi
  done
  [ -n "$pulled" ]
fi
echo "init-host done on $(hostname)"
