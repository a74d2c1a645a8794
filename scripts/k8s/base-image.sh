#!/bin/bash
# base-image.sh: the kubernetes base cluster image kubernetes:$K8S_VERSION in gen's local store.
#   1. binaries (build-k8s.sh, cached by version), Debian packages (fetch-debs.sh, cached)
#   2. container images into an OCI layout (build-images.sh, cached)
#   3. a staging context = images/kubernetes + bin/ cni/ debs/  ($SEALPACK_CACHE/k8s/VERSION/context)
#   4. imgtool serves the layout on a loopback registry while `gen build` bundles each image (--image)
# Env: GEN (default bin/gen), K8S_VERSION, SEALPACK_CACHE, TAG (default kubernetes:$K8S_VERSION),
#      IMGTOOL_ADDR (default 127.0.0.1:5055; the carried images are recorded under this name).
# SOURCE=release (official release binaries and images from dl.k8s.io / registry.k8s.io, for build
# machines with internet) is not implemented yet.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GEN=${GEN:-$REPO/bin/gen}
TAG=${TAG:-kubernetes:$K8S_VERSION}
[ "${SOURCE:-module}" = module ] || { echo "base-image.sh: SOURCE=${SOURCE} is not implemented yet" >&2; exit 2; }
export K8S_VERSION SEALPACK_CACHE=$CACHE
t0=$SECONDS
"$HERE/build-k8s.sh"
DEBS=$("$HERE/fetch-debs.sh")
LAYOUT=$("$HERE/build-images.sh")
BIN=$CACHE/k8s/$K8S_VERSION/bin
CTX=$CACHE/k8s/$K8S_VERSION/context
rm -rf "$CTX"; mkdir -p "$CTX"
cp -a "$REPO/images/kubernetes/." "$CTX/"
mkdir -p "$CTX/bin" "$CTX/cni" "$CTX/debs"
x=$(mktemp -d "$CACHE/k8s/$K8S_VERSION/debx.XXXXXX")
for d in "$DEBS"/runtime/*.deb; do dpkg -x "$d" "$x"; done
cp "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$CTX/bin/"
cp "$x/usr/bin/containerd" "$x/usr/bin/containerd-shim-runc-v2" "$x/usr/bin/ctr" "$x/usr/sbin/runc" "$CTX/bin/"
cp "$x/usr/lib/cni/bridge" "$x/usr/lib/cni/host-local" "$x/usr/lib/cni/loopback" "$CTX/cni/"
cp "$DEBS"/host/*.deb "$CTX/debs/"
rm -rf "$x"
echo "== context $CTX: $(du -sh "$CTX" | cut -f1)"
export GEN TAG CTX K8S_VERSION
"$CACHE/k8s/imgtool" serve -layout "$LAYOUT" -addr "${IMGTOOL_ADDR:-127.0.0.1:5055}" -- bash -c '
  set -e; args=(); for i in $IMGTOOL_IMAGES; do args+=(--image "$i"); done
  echo "== $GEN build -t $TAG (${#args[@]} image flags)"
  "$GEN" build -f "$CTX/Kubefile" -t "$TAG" --build-arg K8S_VERSION="$K8S_VERSION" "${args[@]}" "$CTX"'
"$GEN" images "$TAG"
echo "== $TAG stored in $(( SECONDS - t0 )) s"
