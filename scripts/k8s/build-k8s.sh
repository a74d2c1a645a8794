#!/bin/bash
# build-k8s.sh: the binaries of the kubernetes base image, built or fetched once per version and
# kept outside the repository:  $SEALPACK_CACHE/k8s/$K8S_VERSION/bin  (SEALPACK_CACHE defaults to
# /var/cache/sealpack). A binary already in the cache is not built again; delete it to rebuild.
#
#   Go modules through the module proxy, CGO_ENABLED=0 (static; they also go into FROM-scratch images):
#     kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
#                       k8s.io/kubernetes $K8S_VERSION (build module scripts/k8s/mod/kubernetes:
#                       it replaces every staging module k8s.io/X with k8s.io/X v0.MINOR.PATCH,
#                       because the published k8s.io/kubernetes module has no staging/ folder)
#     etcd              go.etcd.io/etcd/server/v3 v3.7.0 (kubeadm 1.37 wants 3.7.0-0; Debian has 3.4)
#     coredns           github.com/coredns/coredns v1.14.6 (not packaged in Debian 12)
#     pause             scripts/k8s/mod/pause (a Go port of pause.c: no C toolchain needed)
#   The container runtime (containerd, runc, CNI plugins) and sealpack-nft: build-runtime.sh.
#
# Usage: build-k8s.sh [component...]      (default: all)   Env: K8S_VERSION, SEALPACK_CACHE, JOBS
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
OUT=$CACHE/k8s/$K8S_VERSION/bin
mkdir -p "$OUT"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=${GOTOOLCHAIN:-local}

if [ "$K8S_VERSION" != v1.37.2 ]; then
  echo "build-k8s.sh: scripts/k8s/mod/kubernetes pins v1.37.2; regenerate it for $K8S_VERSION" >&2; exit 2
fi
maj=${K8S_VERSION#v}; maj=${maj%%.*}; min=${K8S_VERSION#v$maj.}; min=${min%%.*}
KLD="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$maj -X k8s.io/component-base/version.gitMinor=$min -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
KUBE="kubeadm kubelet kubectl kube-proxy kube-scheduler kube-controller-manager kube-apiserver"
ALL="$KUBE etcd coredns pause"
want=${*:-$ALL}

missing() { local m=; for c in "$@"; do [[ " $want " == *" $c "* ]] && [ ! -x "$OUT/$c" ] && m="$m $c"; done; echo $m; }
timed() { local t0=$SECONDS; "$@"; echo "   $(( SECONDS - t0 )) s"; }
# build DIR LDFLAGS PKG...: one go build for several main packages, so they share the compile
# work; then moved into the cache atomically (a half-built binary is never taken for done).
build() {
  local dir=$1 ld=$2; shift 2
  local tmp; tmp=$(mktemp -d "$OUT/.build.XXXXXX")
  (cd "$dir" && go build -trimpath -ldflags "$ld" -o "$tmp/" "$@")
  for f in "$tmp"/*; do mv -f "$f" "$OUT/"; done; rmdir "$tmp"
}

m=$(missing $KUBE)
if [ -n "$m" ]; then
  echo "== kubernetes $K8S_VERSION:$m ($(date +%T))"
  pk=; for c in $m; do pk="$pk k8s.io/kubernetes/cmd/$c"; done
  timed build "$HERE/mod/kubernetes" "$KLD" $pk
fi
if [ -n "$(missing etcd)" ]; then
  echo "== etcd ($(date +%T))"
  timed build "$HERE/mod/etcd" "-s -w" go.etcd.io/etcd/server/v3
  [ -x "$OUT/server" ] && mv -f "$OUT/server" "$OUT/etcd"
fi
if [ -n "$(missing coredns)" ]; then
  echo "== coredns ($(date +%T))"
  timed build "$HERE/mod/coredns" "-s -w" github.com/coredns/coredns
fi
if [ -n "$(missing pause)" ]; then
  echo "== pause ($(date +%T))"
  timed build "$HERE/mod/pause" "-s -w" .
fi
for c in $want; do
  [ -x "$OUT/$c" ] || { echo "build-k8s.sh: $c missing from $OUT" >&2; exit 1; }
done
echo "== $OUT ($(date +%T))"; (cd "$OUT" && ls -l $want | awk '{printf "   %-26s %6.1f MB\n", $9, $5/1048576}')
