#!/bin/sh
set -eu
. scripts/lib.sh
# Every host, before the control plane changes: the images of the new bundle the host would load
# (SEALPACK_IMAGES, none on the first master: its registry serves the bundle).
images=none
if [ -n "${SEALPACK_IMAGES:-}" ]; then
  images=$(grep -o '"io.containerd.image.name":"[^"]*"' "$SEALPACK_IMAGES/index.json" | cut -d'"' -f4 | sort | paste -sd, -)
fi
record "upgrade-prepare from=$SEALPACK_FROM_VERSION to=$SEALPACK_TO_VERSION images=$images"
