#!/bin/bash
# base-image.sh: the kubernetes base cluster image kubernetes:$K8S_VERSION in gen's local store.
#   1. kubeadm, kubelet, kubectl and the list of control-plane images, from one of two sources:
#        SOURCE=module (default)  built from the Go module proxy (build-k8s.sh, cached by version);
#          the images are built FROM scratch into an OCI layout (build-images.sh, cached) that
#          imgtool serves on a loopback registry while gen build runs.
#        SOURCE=release  the official release, for build machines with internet: the binaries from
#          $K8S_RELEASE_URL (fetch-release.sh: dl.k8s.io, sha256-checked, cached by version and
#          architecture), the images from $K8S_IMAGE_REGISTRY (registry.k8s.io) at the tags that
#          kubeadm of that version lists (`kubeadm config images list`); gen fetches them itself.
#      containerd, runc, the CNI plugins, iptables and the other host tools are Debian 12 packages
#      (fetch-debs.sh, cached) with either source.
#   2. a staging context beside bin/ = images/kubernetes + bin/ cni/ debs/
#        module: $SEALPACK_CACHE/k8s/VERSION/context
#        release: $K8S_RELEASE_CACHE/VERSION/linux-ARCH/context
#   3. `gen build` of images/kubernetes/Kubefile with each image as --image
# Env: GEN (default bin/gen), K8S_VERSION, SEALPACK_CACHE, TAG (default kubernetes:$K8S_VERSION),
#      SOURCE (module or release),
#      module:  IMGTOOL_ADDR (default 127.0.0.1:5055; the carried images are recorded under this name)
#      release: K8S_RELEASE_URL (default https://dl.k8s.io/release), K8S_RELEASE_CACHE (default
#               $SEALPACK_CACHE/k8s-release), K8S_IMAGE_REGISTRY (default registry.k8s.io: a host[:port]
#               mirroring registry.k8s.io's repositories), K8S_IMAGE_REGISTRY_INSECURE=1 (plain HTTP).
#
# Image names: the bundle's registry serves each image by its repository and tag without the host,
# and on the installed hosts containerd's registry.k8s.io mirror (init-host.sh, certs.d) asks it for
# registry.k8s.io's repository names: kube-apiserver, coredns/coredns, pause, ... The module source
# records 127.0.0.1:5055/kube-apiserver:v1.37.2; the release source records
# $K8S_IMAGE_REGISTRY/kube-apiserver:v1.37.2. Both are served as kube-apiserver:v1.37.2, which is
# what kubeadm (imageRepository registry.k8s.io) and containerd pull. That is why the release list
# is kubeadm's list for registry.k8s.io with only the host replaced, not kubeadm's list for
# --image-repository $K8S_IMAGE_REGISTRY: for any repository but registry.k8s.io kubeadm drops the
# coredns/ level (MIRROR/coredns:v1.14.6), which the cluster would never ask for. And it is why
# K8S_IMAGE_REGISTRY may not carry a path: MIRROR/k8s/kube-apiserver would be served as
# k8s/kube-apiserver.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GEN=${GEN:-$REPO/bin/gen}
TAG=${TAG:-kubernetes:$K8S_VERSION}
SOURCE=${SOURCE:-module}
# The Debian packages are this machine's architecture, so the bundle is too.
ARCH=$(dpkg --print-architecture)
die() { echo "base-image.sh: $*" >&2; exit 1; }
export K8S_VERSION SEALPACK_CACHE=$CACHE ARCH
t0=$SECONDS

# 1. binaries and images: the only step that differs between the sources. Each sets
#    BIN (the folder of kubeadm kubelet kubectl), SERVE (a command prefix gen build runs under, or
#    nothing), IMGTOOL_IMAGES (the image refs; imgtool serve sets it itself) and GENFLAGS.
SERVE=(); GENFLAGS=()
case $SOURCE in
module)
  "$HERE/build-k8s.sh"
  BIN=$CACHE/k8s/$K8S_VERSION/bin
  LAYOUT=$("$HERE/build-images.sh")
  SERVE=("$CACHE/k8s/imgtool" serve -layout "$LAYOUT" -addr "${IMGTOOL_ADDR:-127.0.0.1:5055}" --)
  ;;
release)
  REG=${K8S_IMAGE_REGISTRY:-registry.k8s.io}
  [[ $REG =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ && ( $REG == *[.:]* || $REG == localhost ) ]] ||
    die "K8S_IMAGE_REGISTRY=$REG: want a registry HOST[:PORT] without a path (see the header)"
  BIN=$("$HERE/fetch-release.sh")
  list=$("$BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" --image-repository registry.k8s.io) ||
    die "$BIN/kubeadm config images list failed"
  IMGTOOL_IMAGES=$(for i in $list; do echo "$REG/${i#registry.k8s.io/}"; done)
  if [ "${K8S_IMAGE_REGISTRY_INSECURE:-}" = 1 ]; then GENFLAGS=(--insecure-registry "$REG"); fi
  ;;
*) echo "base-image.sh: SOURCE=$SOURCE: want module or release" >&2; exit 2 ;;
esac
DEBS=$("$HERE/fetch-debs.sh")

# 2. the staging context
CTX=$(dirname "$BIN")/context
rm -rf "$CTX"; mkdir -p "$CTX"
cp -a "$REPO/images/kubernetes/." "$CTX/"
mkdir -p "$CTX/bin" "$CTX/cni" "$CTX/debs"
x=$(mktemp -d "$CTX.debx.XXXXXX")
for d in "$DEBS"/runtime/*.deb; do dpkg -x "$d" "$x"; done
cp "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$CTX/bin/"
cp "$x/usr/bin/containerd" "$x/usr/bin/containerd-shim-runc-v2" "$x/usr/bin/ctr" "$x/usr/sbin/runc" "$CTX/bin/"
cp "$x/usr/lib/cni/bridge" "$x/usr/lib/cni/host-local" "$x/usr/lib/cni/loopback" "$CTX/cni/"
cp "$DEBS"/host/*.deb "$CTX/debs/"
rm -rf "$x"
echo "== context $CTX: $(du -sh "$CTX" | cut -f1)"

# 3. gen build, with every image as --image
export GEN TAG CTX IMGTOOL_IMAGES
"${SERVE[@]}" bash -c '
  set -e; args=("$@"); for i in $IMGTOOL_IMAGES; do args+=(--image "$i"); done
  echo "== $GEN build -t $TAG ($(wc -w <<< "$IMGTOOL_IMAGES") images)"
  "$GEN" build -f "$CTX/Kubefile" -t "$TAG" --arch "$ARCH" --build-arg K8S_VERSION="$K8S_VERSION" "${args[@]}" "$CTX"' gen-build "${GENFLAGS[@]}"
"$GEN" images "$TAG"
echo "== $TAG ($SOURCE) stored in $(( SECONDS - t0 )) s"
