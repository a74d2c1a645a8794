#!/bin/bash
# build-k8s.sh: the binaries of the kubernetes base image, built or fetched once per version and
# kept outside the repository:  $SEALPACK_CACHE/k8s/$K8S_VERSION/bin  (SEALPACK_CACHE defaults to
# /var/cache/sealpack). A binary already in the cache is not built again; delete it to rebuild.
#
#   Go modules through the module proxy, CGO_ENABLED=0 (static; they also go into FROM-scratch images):
#     kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
#                       k8s.io/kubernetes $K8S_VERSION
#     etcd              go.etcd.io/etcd/server/v3 at the version kubeadm $K8S_VERSION deploys
#                       (its image list: etcd:3.7.0-0 for v1.37, 3.6.8-0 for v1.36; Debian has 3.4)
#     etcdctl etcdutl   go.etcd.io/etcd/etcdctl/v3, etcdutl/v3 at the same version: the upgrade's
#                       etcd snapshot (upgrade-snapshot.sh) and its restore (docs/UPGRADE.md)
#     coredns           github.com/coredns/coredns at kubeadm's version (v1.14.6 for v1.37, v1.14.2
#                       for v1.36; not packaged in Debian 12)
#     pause             scripts/k8s/mod/pause (a Go port of pause.c: no C toolchain needed); its
#                       image is tagged as kubeadm lists it (build-images.sh)
#   Each Go module is built from a build module generated for its version in
#   $SEALPACK_CACHE/k8s/$K8S_VERSION/mod/NAME by `go get` (the dependency versions the module's own
#   go.mod asks for, every download checked against sum.golang.org). The one for kubernetes
#   replaces every staging module k8s.io/X (those k8s.io/kubernetes@VERSION's go.mod points at
#   ./staging) with k8s.io/X v0.MINOR.PATCH, because the published module has no staging/ folder.
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

. "$HERE/lib.sh"
die() { echo "build-k8s.sh: $*" >&2; exit 1; }
[[ $K8S_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "K8S_VERSION=$K8S_VERSION: want a release vMAJOR.MINOR.PATCH such as v1.37.2"
maj=${K8S_VERSION#v}; maj=${maj%%.*}; min=${K8S_VERSION#v$maj.}; min=${min%%.*}
KLD="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$maj -X k8s.io/component-base/version.gitMinor=$min -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
KUBE="kubeadm kubelet kubectl kube-proxy kube-scheduler kube-controller-manager kube-apiserver"
ETCD="etcd etcdctl etcdutl"
ALL="$KUBE $ETCD coredns pause"
want=${*:-$ALL}

missing() { local m=; for c in "$@"; do [[ " $want " == *" $c "* ]] && [ ! -x "$OUT/$c" ] && m="$m $c"; done; echo $m; }
timed() { local t0=$SECONDS; "$@"; echo "   $(( SECONDS - t0 )) s"; }
# gomod NAME MODULE@VERSION [PACKAGE...]: the build module $MODS/NAME requiring MODULE@VERSION (and
# what PACKAGEs need, in go.sum); made once, in a temporary folder renamed in when complete.
# For kubernetes, the staging replacements are added first: without them k8s.io/kubernetes's
# requirement k8s.io/api v0.0.0 cannot be resolved.
MODS=$CACHE/k8s/$K8S_VERSION/mod
gomod() {
  local name=$1 mv=$2; shift 2
  [ "$(cat "$MODS/$name/.made-for" 2>/dev/null)" = "$mv $*" ] && return
  mkdir -p "$MODS"; local tmp; tmp=$(mktemp -d "$MODS/.$name.XXXXXX")
  printf 'module sealpack.local/%sbuild\n\ngo 1.26.0\n' "$name" > "$tmp/go.mod"
  if [ "$name" = kubernetes ]; then
    local modfile m
    modfile=$(cd "$tmp" && go mod download -json "$mv" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$modfile" ] || die "go mod download $mv: no go.mod"
    for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$modfile"); do
      (cd "$tmp" && go mod edit -replace "$m=$m@v0.$min.${K8S_VERSION##*.}")
    done
  fi
  (cd "$tmp" && go get "${@:-$mv}" > go-get.log 2>&1) ||
    { cat "$tmp/go-get.log" >&2; die "go get ${*:-$mv} failed (is the module proxy reachable?)"; }
  echo "$mv $*" > "$tmp/.made-for"
  rm -rf "$MODS/$name"; mv "$tmp" "$MODS/$name"
}
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
  pk=; for c in $KUBE; do pk="$pk k8s.io/kubernetes/cmd/$c@$K8S_VERSION"; done
  gomod kubernetes k8s.io/kubernetes@$K8S_VERSION $pk
  pk=; for c in $m; do pk="$pk k8s.io/kubernetes/cmd/$c"; done
  timed build "$MODS/kubernetes" "$KLD" $pk
fi
# etcd's and CoreDNS's versions: those kubeadm of this version lists (kubeadm is built first when
# only etcd or coredns was asked for)
if [ -n "$(missing $ETCD coredns)" ]; then
  [ -x "$OUT/kubeadm" ] || K8S_VERSION=$K8S_VERSION SEALPACK_CACHE=$CACHE "$0" kubeadm
  imgs=$(k8s_images "$OUT/kubeadm" "$K8S_VERSION") || die "cannot list kubeadm's images"
  etcdv=$(k8s_image_tag "$imgs" etcd) && corednsv=$(k8s_image_tag "$imgs" coredns/coredns) || die "kubeadm $K8S_VERSION lists no etcd or coredns image"
  etcdv=v${etcdv%-*}   # the image tag 3.6.8-0 is etcd v3.6.8, image revision 0
fi
m=$(missing $ETCD)
if [ -n "$m" ]; then
  echo "== $m $etcdv ($(date +%T))"
  gomod etcd go.etcd.io/etcd/server/v3@$etcdv go.etcd.io/etcd/server/v3@$etcdv go.etcd.io/etcd/etcdctl/v3@$etcdv go.etcd.io/etcd/etcdutl/v3@$etcdv
  pk=; for c in $m; do case $c in etcd) pk="$pk go.etcd.io/etcd/server/v3";; *) pk="$pk go.etcd.io/etcd/$c/v3";; esac; done
  timed build "$MODS/etcd" "-s -w" $pk
  [ ! -x "$OUT/server" ] || mv -f "$OUT/server" "$OUT/etcd"
fi
if [ -n "$(missing coredns)" ]; then
  echo "== coredns $corednsv ($(date +%T))"
  gomod coredns github.com/coredns/coredns@$corednsv
  timed build "$MODS/coredns" "-s -w" github.com/coredns/coredns
fi
if [ -n "$(missing pause)" ]; then
  echo "== pause ($(date +%T))"
  timed build "$HERE/mod/pause" "-s -w" .
fi
for c in $want; do
  [ -x "$OUT/$c" ] || { echo "build-k8s.sh: $c missing from $OUT" >&2; exit 1; }
done
echo "== $OUT ($(date +%T))"; (cd "$OUT" && ls -l $want | awk '{printf "   %-26s %6.1f MB\n", $9, $5/1048576}')
