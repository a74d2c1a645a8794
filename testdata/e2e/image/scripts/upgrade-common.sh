# Sourced by the upgrade scripts: the new rootfs's payload, and every image
# of TEST_PULL pulled from the cluster's registry (the old bundle's and the new one's).
cp "$SEALPACK_ROOTFS/etc/payload.txt" "$OUT/payload.txt"
for im in ${TEST_PULL:-}; do
  repo=${im%:*} tag=${im##*:}
  curl -sSf --cacert "$SEALPACK_REGISTRY_CA" -o "$OUT/manifest.json" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "https://$SEALPACK_REGISTRY/v2/$repo/manifests/$tag"
  layer=$(grep -o 'sha256:[a-f0-9]\{64\}' "$OUT/manifest.json" | tail -1)
  curl -sSf --cacert "$SEALPACK_REGISTRY_CA" -o "$OUT/layer" "https://$SEALPACK_REGISTRY/v2/$repo/blobs/$layer"
  echo "${layer#sha256:}  $OUT/layer" | sha256sum -c --status
  record "upgrade pulled $im"
done
