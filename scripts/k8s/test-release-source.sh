#!/bin/bash
# test-release-source.sh: base-image.sh SOURCE=release without internet, against loopback stand-ins:
#   dl.k8s.io        imgtool files: the module-built kubeadm, kubelet, kubectl of $SEALPACK_CACHE/k8s/
#                    v1.37.2/bin as release/v1.37.2/bin/linux/ARCH/NAME, with NAME.sha256 (the hex digest)
#   registry.k8s.io  imgtool serve: build-images.sh's OCI layout (plain HTTP: K8S_IMAGE_REGISTRY_INSECURE=1)
#   github.com       imgtool files: containerd's, runc's and the CNI plugins' release assets made from
#                    build-runtime.sh's binaries (containerd-static-*.tar.gz, runc.ARCH, cni-plugins-*.tgz)
#                    with the sha256 files each project publishes beside them
# Checks, with a download cache of its own (K8S_RELEASE_CACHE in a temporary folder):
#   1. an unreachable K8S_RELEASE_URL fails fast, names the URL and leaves no file in the cache
#   2. a wrong NAME.sha256 fails the build with the mismatch (the file and both digests); so does a
#      wrong runc.sha256sum
#   3. a build stores kubernetes-release-test:v1.37.2 carrying the same images as the module-built
#      kubernetes:v1.37.2 (same repository:tag, the registry.k8s.io names, and digests) and the served
#      kubeadm, runc and containerd; then a second fetch with the network gone downloads nothing
# and removes the test tag. Needs the module build (make base-image) first: fails saying so without.
# Env: GEN, SEALPACK_CACHE.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
K8S_VERSION=v1.37.2
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GEN=${GEN:-$REPO/bin/gen}
MOD=$CACHE/k8s/$K8S_VERSION
TAG=kubernetes-release-test:$K8S_VERSION
ARCH=$(dpkg --print-architecture)
export GEN SEALPACK_CACHE=$CACHE K8S_VERSION
fail() { echo "test-release-source.sh: FAIL: $*" >&2; exit 1; }
ok() { echo "test-release-source.sh: ok: $*"; }

if [ "${1:-}" != --served ]; then
  RTM=$CACHE/runtime/linux-$ARCH; export RTM
  for f in "$MOD"/bin/kubeadm "$MOD"/bin/kubelet "$MOD"/bin/kubectl "$MOD"/images/index.json \
    "$RTM"/containerd/containerd "$RTM"/runc/runc "$RTM"/cni/bridge; do
    [ -s "$f" ] || fail "the module build's cache is missing $f: run make base-image first"
  done
  "$GEN" images "kubernetes:$K8S_VERSION" >/dev/null 2>&1 ||
    fail "kubernetes:$K8S_VERSION is not in gen's store: run make base-image first"
  T=$(mktemp -d "$CACHE/k8s-release-test.XXXXXX"); export T
  trap 'rm -rf "$T"; "$GEN" rmi "$TAG" >/dev/null 2>&1 || true' EXIT
  (cd "$HERE/mod/imgtool" && CGO_ENABLED=0 go build -o "$T/imgtool" .)
  d=$T/dl/release/$K8S_VERSION/bin/linux/$ARCH; mkdir -p "$d"
  for b in kubeadm kubelet kubectl; do
    ln -s "$MOD/bin/$b" "$d/$b"
    sha256sum "$MOD/bin/$b" | cut -d' ' -f1 > "$d/$b.sha256"
  done
  # the runtime's release assets, as the projects publish them
  CV=$(basename "$(readlink "$RTM/containerd")"); CV=${CV#containerd-}
  RV=$(basename "$(readlink "$RTM/runc")"); RV=${RV#runc-}
  NV=$(basename "$(readlink "$RTM/cni")"); NV=${NV#cni-}
  export CONTAINERD_VERSION=$CV RUNC_VERSION=$RV CNI_VERSION=$NV
  d=$T/dl/containerd/$CV; f=containerd-static-${CV#v}-linux-$ARCH.tar.gz; mkdir -p "$d" "$T/ctd/bin"
  cp "$RTM"/containerd/{containerd,containerd-shim-runc-v2,ctr} "$T/ctd/bin/"
  tar -czf "$d/$f" -C "$T/ctd" bin; (cd "$d" && sha256sum "$f" > "$f.sha256sum")
  d=$T/dl/runc/$RV; mkdir -p "$d"; cp "$RTM/runc/runc" "$d/runc.$ARCH"
  (cd "$d" && sha256sum "runc.$ARCH" > runc.sha256sum && echo "$(echo other | sha256sum | cut -d' ' -f1)  runc.arm64" >> runc.sha256sum)
  d=$T/dl/cni/$NV; f=cni-plugins-linux-$ARCH-$NV.tgz; mkdir -p "$d"
  tar -czf "$d/$f" -C "$RTM/cni/" ./bridge ./host-local ./loopback; (cd "$d" && sha256sum "$f" > "$f.sha256")
  "$T/imgtool" files -root "$T/dl" -- "$T/imgtool" serve -layout "$MOD/images" -addr 127.0.0.1:0 -- "$0" --served
  echo "test-release-source.sh: PASS in $SECONDS s"
  exit 0
fi

# Under both servers: IMGTOOL_FILES=http://127.0.0.1:P, IMGTOOL_REGISTRY=127.0.0.1:Q
export SOURCE=release TAG K8S_IMAGE_REGISTRY=$IMGTOOL_REGISTRY K8S_IMAGE_REGISTRY_INSECURE=1
export CONTAINERD_RELEASE_URL=$IMGTOOL_FILES/containerd RUNC_RELEASE_URL=$IMGTOOL_FILES/runc CNI_RELEASE_URL=$IMGTOOL_FILES/cni
URL=$IMGTOOL_FILES/release
D=$T/dl/release/$K8S_VERSION/bin/linux/$ARCH
served=$(cat "$D/kubeadm.sha256")

# 1. no network
t=$SECONDS
if K8S_RELEASE_URL=http://127.0.0.1:9/release K8S_RELEASE_CACHE=$T/cache-off "$HERE/base-image.sh" >"$T/off.log" 2>&1; then
  fail "unreachable K8S_RELEASE_URL: the build succeeded"
fi
grep -q "http://127.0.0.1:9/release/$K8S_VERSION/bin/linux/$ARCH/kubeadm" "$T/off.log" ||
  { cat "$T/off.log"; fail "unreachable K8S_RELEASE_URL: the message does not name the URL"; }
[ -z "$(find "$T/cache-off" -type f 2>/dev/null)" ] || fail "unreachable K8S_RELEASE_URL left files: $(find "$T/cache-off" -type f)"
(( SECONDS - t < 15 )) || fail "unreachable K8S_RELEASE_URL took $(( SECONDS - t )) s"
ok "unreachable K8S_RELEASE_URL fails in $(( SECONDS - t )) s: $(grep -m1 'cannot download' "$T/off.log")"

# 2. a wrong digest
bad=$(echo corrupt | sha256sum | cut -d' ' -f1)
echo "$bad" > "$D/kubeadm.sha256"
if K8S_RELEASE_URL=$URL K8S_RELEASE_CACHE=$T/cache-bad "$HERE/base-image.sh" >"$T/bad.log" 2>&1; then
  fail "corrupted kubeadm.sha256: the build succeeded"
fi
echo "$served" > "$D/kubeadm.sha256"
grep "sha256 mismatch" "$T/bad.log" | grep "kubeadm.sha256" | grep "$bad" | grep -q "$served" ||
  { cat "$T/bad.log"; fail "corrupted kubeadm.sha256: no mismatch message naming the file and both digests"; }
[ -z "$(find "$T/cache-bad" -type f 2>/dev/null)" ] || fail "corrupted kubeadm.sha256 left files: $(find "$T/cache-bad" -type f)"
ok "corrupted kubeadm.sha256 fails: $(grep -m1 'sha256 mismatch' "$T/bad.log")"
R=$T/dl/runc/$RUNC_VERSION; cp "$R/runc.sha256sum" "$T/runc.sha256sum"
sed -i "s/^[0-9a-f]*  runc.$ARCH\$/$bad  runc.$ARCH/" "$R/runc.sha256sum"
if K8S_RELEASE_URL=$URL K8S_RELEASE_CACHE=$T/cache-badrunc "$HERE/base-image.sh" >"$T/badrunc.log" 2>&1; then
  fail "corrupted runc.sha256sum: the build succeeded"
fi
cp "$T/runc.sha256sum" "$R/runc.sha256sum"
grep "sha256 mismatch" "$T/badrunc.log" | grep "runc.$ARCH" | grep -q "$bad" ||
  { cat "$T/badrunc.log"; fail "corrupted runc.sha256sum: no mismatch message naming runc and the digest"; }
left=$(find "$T/cache-badrunc" \( -name 'runc*' -o -name '.download*' \) 2>/dev/null)
[ -z "$left" ] || fail "corrupted runc.sha256sum left files: $left"
ok "corrupted runc.sha256sum fails: $(grep -m1 'sha256 mismatch' "$T/badrunc.log")"

# 3. the build
t=$SECONDS
K8S_RELEASE_URL=$URL K8S_RELEASE_CACHE=$T/cache "$HERE/base-image.sh"
ok "SOURCE=release base image in $(( SECONDS - t )) s"
# repository:tag and digest of each carried image (the bundle's registry serves them without the host)
carried() { "$GEN" images "$1" | awk 'NR > 1 { n = $1; sub(/^[^\/]*\//, "", n); print n, $2 }' | sort; }
carried "kubernetes:$K8S_VERSION" > "$T/module.images"
carried "$TAG" > "$T/release.images"
[ -s "$T/release.images" ] || fail "$TAG carries no images"
diff "$T/module.images" "$T/release.images" || fail "$TAG carries other images than kubernetes:$K8S_VERSION"
"$GEN" images "$TAG" | awk 'NR > 1 { print $1 }' | grep -v "^registry.k8s.io/" &&
  fail "$TAG carries images fetched from K8S_IMAGE_REGISTRY=$IMGTOOL_REGISTRY not named as registry.k8s.io's (the name its hosts import them under)"
ok "$TAG carries the images of kubernetes:$K8S_VERSION: $(cut -d' ' -f1 "$T/release.images" | tr '\n' ' ')"

# the kubeadm in the image's bin/ layer
STORE=${XDG_DATA_HOME:-$HOME/.local/share}/sealpack/images
layer=$("$GEN" inspect "$TAG" | awk '/"digest"/ { d = $2 } /"createdBy": "COPY .* bin\/\* \/bin\/"/ { gsub(/[",]/, "", d); print d; exit }')
[ -n "$layer" ] && [ -f "$STORE/blobs/sha256/${layer#sha256:}" ] || fail "no bin/ layer of $TAG in $STORE (layer '$layer')"
got=$(tar -xOf "$STORE/blobs/sha256/${layer#sha256:}" bin/kubeadm | sha256sum | cut -d' ' -f1)
[ "$got" = "$served" ] || fail "$TAG carries kubeadm $got, the served one is $served"
ok "$TAG carries the served kubeadm ($served)"
for b in runc containerd; do
  got=$(tar -xOf "$STORE/blobs/sha256/${layer#sha256:}" bin/$b | sha256sum | cut -d' ' -f1)
  want=$(sha256sum < "$RTM/$b/$b" | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "$TAG carries $b $got, the served release's is $want"
done
"$GEN" inspect "$TAG" | grep -q "io.sealpack.runc.version.*$RUNC_VERSION" || fail "$TAG has no io.sealpack.runc.version=$RUNC_VERSION label"
ok "$TAG carries the served runc and containerd releases, labelled"

# a second fetch downloads nothing: it succeeds with the network gone
bin=$(K8S_RELEASE_URL=http://127.0.0.1:9/release K8S_RELEASE_CACHE=$T/cache "$HERE/fetch-release.sh") ||
  fail "fetch-release.sh with a warm cache tried the network"
CONTAINERD_RELEASE_URL=http://127.0.0.1:9 RUNC_RELEASE_URL=http://127.0.0.1:9 CNI_RELEASE_URL=http://127.0.0.1:9 \
  K8S_RELEASE_CACHE=$T/cache "$HERE/fetch-release.sh" runtime >/dev/null ||
  fail "fetch-release.sh runtime with a warm cache tried the network"
[ "$bin" = "$T/cache/$K8S_VERSION/linux-$ARCH/bin" ] || fail "fetch-release.sh printed $bin"
ok "a second fetch downloads nothing"
