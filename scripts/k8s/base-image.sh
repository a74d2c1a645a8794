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
#      containerd, runc, the CNI plugins: static binaries built from the Go module proxy
#      (build-runtime.sh, cached by version), or with SOURCE=release the projects' static release
#      binaries (fetch-release.sh runtime, sha256-checked); sealpack-nft is built with either. No
#      host tool comes from a package (build-runtime.sh's header says where each went).
#   2. a staging context beside bin/ = images/kubernetes + bin/ cni/; the runtime's versions, as
#      the binaries report them, become the image's labels (io.sealpack.{containerd,runc,cni}.version)
#        module: $SEALPACK_CACHE/k8s/VERSION/context
#        release: $K8S_RELEASE_CACHE/VERSION/linux-ARCH/context
#   3. `gen build` of images/kubernetes/Kubefile with each image as --image
# Env: GEN (default bin/gen), K8S_VERSION, SEALPACK_CACHE, TAG (default kubernetes:$K8S_VERSION),
#      SOURCE (module or release),
#      module:  IMGTOOL_ADDR (default 127.0.0.1:5055; the carried images are recorded under this name)
#      release: K8S_RELEASE_URL (default https://dl.k8s.io/release), CONTAINERD_RELEASE_URL,
#               RUNC_RELEASE_URL, CNI_RELEASE_URL (fetch-release.sh), K8S_RELEASE_CACHE (default
#               $SEALPACK_CACHE/k8s-release), K8S_IMAGE_REGISTRY (default registry.k8s.io: a host[:port]
#               mirroring registry.k8s.io's repositories), K8S_IMAGE_REGISTRY_INSECURE=1 (plain HTTP).
#
# Image names: the bundle's registry serves each image by its repository and tag without the host,
# and on the installed hosts containerd's registry.k8s.io mirror (init-host.sh, certs.d) asks it for
# registry.k8s.io's repository names: kube-apiserver, coredns/coredns, pause, ... The module source
# fetches 127.0.0.1:5055/kube-apiserver:v1.37.2, the release source
# $K8S_IMAGE_REGISTRY/kube-apiserver:v1.37.2; both are bundled under the name the cluster uses,
# registry.k8s.io/kube-apiserver:v1.37.2 (gen --image SRC=DEST), served as kube-apiserver:v1.37.2,
# which is what kubeadm (imageRepository registry.k8s.io) and containerd pull. The name matters
# where a host imports the bundle's images instead of pulling them (init-host.sh, step 6): the
# kubelet finds registry.k8s.io/kube-proxy:v1.37.2 there, never 127.0.0.1:5055/kube-proxy. That is why the release list
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
# The runtime is built for this machine's architecture (runc needs its C compiler), so the bundle is too.
ARCH=$(go env GOARCH)
die() { echo "base-image.sh: $*" >&2; exit 1; }
. "$HERE/lib.sh"
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
  list=$(k8s_images "$BIN/kubeadm" "$K8S_VERSION") || die "cannot list kubeadm's images"
  IMGTOOL_IMAGES=$(for i in $list; do echo "$REG/$i"; done)
  if [ "${K8S_IMAGE_REGISTRY_INSECURE:-}" = 1 ]; then GENFLAGS=(--insecure-registry "$REG"); fi
  ;;
*) echo "base-image.sh: SOURCE=$SOURCE: want module or release" >&2; exit 2 ;;
esac
# containerd's sandbox (pause) image is configured by files/containerd.toml, not by kubeadm: it must
# be the one this kubeadm deploys, or pods would wait for an image the bundle does not carry
pause=$(k8s_image_tag "$(k8s_images "$BIN/kubeadm" "$K8S_VERSION")" pause) || die "cannot list kubeadm's images"
grep -q "^ *sandbox = \"registry.k8s.io/pause:$pause\"" "$REPO/images/kubernetes/rootfs/files/containerd.toml" ||
  die "kubeadm $K8S_VERSION runs pause:$pause, but images/kubernetes/rootfs/files/containerd.toml configures containerd's sandbox image otherwise: make them agree"
# the container runtime: RT holds containerd/ runc/ cni/, NFT sealpack-nft/ (always built here)
case $SOURCE in
module) RT=$("$HERE/build-runtime.sh"); NFT=$RT ;;
release) RT=$("$HERE/fetch-release.sh" runtime); NFT=$("$HERE/build-runtime.sh" sealpack-nft) ;;
esac

# 2. the staging context
CTX=$(dirname "$BIN")/context
rm -rf "$CTX"; mkdir -p "$CTX"
cp -a "$REPO/images/kubernetes/." "$CTX/"
mkdir -p "$CTX/bin" "$CTX/cni"
cp "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$CTX/bin/"
# the upgrade's etcd snapshot and its restore (module source; a release build has no etcdctl)
for b in etcdctl etcdutl; do [ ! -x "$BIN/$b" ] || cp "$BIN/$b" "$CTX/bin/"; done
cp "$RT"/containerd/{containerd,containerd-shim-runc-v2,ctr} "$RT"/runc/runc "$NFT"/sealpack-nft/sealpack-nft "$CTX/bin/"
cp "$RT"/cni/{bridge,host-local,loopback} "$CTX/cni/"
# the versions the binaries report (not the ones asked for): containerd github.com/containerd/containerd/v2 v2.4.2,
# runc version 1.5.3, CNI bridge plugin v1.10.0
CONTAINERD_VERSION=$("$CTX/bin/containerd" --version | awk '{print $3}')
RUNC_VERSION=v$("$CTX/bin/runc" --version | awk '/^runc version/ {print $3}')
CNI_VERSION=$("$CTX/cni/bridge" 2>&1 | awk '/plugin/ {print $NF; exit}')
for v in "$CONTAINERD_VERSION" "$RUNC_VERSION" "$CNI_VERSION"; do
  [[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || die "a runtime binary reports no version: containerd '$CONTAINERD_VERSION' runc '$RUNC_VERSION' cni '$CNI_VERSION'"
done
echo "== runtime: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_VERSION"
# the hosts' containerd configuration is in the version this containerd wants: it would otherwise
# migrate it at every start ("Configuration migrated from version N")
m=$("$CTX/bin/containerd" --config "$CTX/rootfs/files/containerd.toml" config migrate 2>&1 >/dev/null) ||
  die "containerd $CONTAINERD_VERSION rejects rootfs/files/containerd.toml: $m"
[ -z "$m" ] || die "containerd $CONTAINERD_VERSION migrates rootfs/files/containerd.toml at every start; write it in the version \`containerd config migrate\` prints: $m"
echo "== context $CTX: $(du -sh "$CTX" | cut -f1)"

# 3. gen build, with every image as --image, named as registry.k8s.io's (see the header)
export GEN TAG CTX IMGTOOL_IMAGES CONTAINERD_VERSION RUNC_VERSION CNI_VERSION
"${SERVE[@]}" bash -c '
  set -e; args=("$@")
  for i in $IMGTOOL_IMAGES; do n=registry.k8s.io/${i#*/}; [ "$i" = "$n" ] || i="$i=$n"; args+=(--image "$i"); done
  echo "== $GEN build -t $TAG ($(wc -w <<< "$IMGTOOL_IMAGES") images)"
  "$GEN" build -f "$CTX/Kubefile" -t "$TAG" --arch "$ARCH" --build-arg K8S_VERSION="$K8S_VERSION" \
    --build-arg CONTAINERD_VERSION="$CONTAINERD_VERSION" --build-arg RUNC_VERSION="$RUNC_VERSION" \
    --build-arg CNI_VERSION="$CNI_VERSION" "${args[@]}" "$CTX"' gen-build "${GENFLAGS[@]}"
"$GEN" images "$TAG"
echo "== $TAG ($SOURCE) stored in $(( SECONDS - t0 )) s"
