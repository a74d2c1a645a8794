#!/bin/bash
# fetch-release.sh: kubeadm, kubelet and kubectl $K8S_VERSION as the Kubernetes project releases
# them, for base-image.sh SOURCE=release (build machines with internet). Prints the folder:
#   $K8S_RELEASE_CACHE/$K8S_VERSION/linux-$ARCH/bin   (K8S_RELEASE_CACHE: $SEALPACK_CACHE/k8s-release)
# Each NAME comes from $K8S_RELEASE_URL/$K8S_VERSION/bin/linux/$ARCH/NAME (default
# K8S_RELEASE_URL=https://dl.k8s.io/release) and must match the digest in the NAME.sha256 published
# beside it. A binary already in the folder is not downloaded again (a second run needs no network).
# `fetch-release.sh runtime` instead: the container runtime as its projects release it, statically
# linked, each archive checked against the sha256 file published beside it; prints the folder
#   $K8S_RELEASE_CACHE/runtime/linux-$ARCH   with containerd/ runc/ cni/ as build-runtime.sh lays them out
#   containerd  $CONTAINERD_RELEASE_URL/$CONTAINERD_VERSION/containerd-static-VERSION-linux-ARCH.tar.gz
#               (+ .sha256sum; default URL https://github.com/containerd/containerd/releases/download)
#   runc        $RUNC_RELEASE_URL/$RUNC_VERSION/runc.ARCH (digest in runc.sha256sum; the release's
#               runc is static; default URL https://github.com/opencontainers/runc/releases/download)
#   CNI         $CNI_RELEASE_URL/$CNI_VERSION/cni-plugins-linux-ARCH-VERSION.tgz (+ .sha256; built
#               CGO_ENABLED=0; default URL https://github.com/containernetworking/plugins/releases/download)
# sealpack-nft has no release: build-runtime.sh builds it with either source.
# Downloads go to a temporary folder beside it and are renamed in only once verified, so a failed or
# interrupted run leaves nothing that a later run would take for done.
# Env: K8S_VERSION, ARCH (default: this machine's Debian architecture), K8S_RELEASE_URL,
#      K8S_RELEASE_CACHE, SEALPACK_CACHE, CONNECT_TIMEOUT (seconds, default 10; a download that
#      stalls below 1 KB/s for 30 s fails too).
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ARCH=${ARCH:-$(dpkg --print-architecture)}
URL=${K8S_RELEASE_URL:-https://dl.k8s.io/release}
RCACHE=${K8S_RELEASE_CACHE:-${SEALPACK_CACHE:-/var/cache/sealpack}/k8s-release}
OUT=$RCACHE/$K8S_VERSION/linux-$ARCH/bin
die() { echo "fetch-release.sh: $*" >&2; exit 1; }
command -v curl >/dev/null || die "curl is needed to download the release (apt-get install curl)"

# get URL FILE: download, failing with the URL
get() {
  curl --fail --silent --show-error --location --connect-timeout "${CONNECT_TIMEOUT:-10}" \
    --speed-limit 1024 --speed-time 30 -o "$2" "$1" \
    || die "cannot download $1 (curl says why above; without internet use SOURCE=module or a reachable URL)"
}
# verified URL FILE SUMURL: download URL to FILE; its sha256 must be the one SUMURL lists for the
# URL's file name ("DIGEST  NAME" lines) or, for a file holding one bare digest, that one
verified() {
  local name=${1##*/} want got
  echo "== $1" >&2
  get "$3" "$2.sum"
  want=$(awk -v n="$name" '$2 == n || $2 == "*" n {print $1; exit} NF == 1 {print $1; exit}' "$2.sum")
  [[ $want =~ ^[0-9a-f]{64}$ ]] || die "$3 lists no sha256 digest for $name: $(head -c 100 "$2.sum")"
  get "$1" "$2"
  got=$(sha256sum "$2" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "sha256 mismatch for $1: $3 says $want, the download is $got"
  rm -f "$2.sum"
}

if [ "${1:-}" = runtime ]; then
  CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2} RUNC_VERSION=${RUNC_VERSION:-v1.5.3} CNI_VERSION=${CNI_VERSION:-v1.10.0}
  CDU=${CONTAINERD_RELEASE_URL:-https://github.com/containerd/containerd/releases/download}
  RU=${RUNC_RELEASE_URL:-https://github.com/opencontainers/runc/releases/download}
  CU=${CNI_RELEASE_URL:-https://github.com/containernetworking/plugins/releases/download}
  RT=$RCACHE/runtime/linux-$ARCH; mkdir -p "$RT"
  tmp=$(mktemp -d "$RT/.download.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
  d=containerd-$CONTAINERD_VERSION
  if [ ! -x "$RT/$d/containerd-shim-runc-v2" ]; then
    f=containerd-static-${CONTAINERD_VERSION#v}-linux-$ARCH.tar.gz
    verified "$CDU/$CONTAINERD_VERSION/$f" "$tmp/$f" "$CDU/$CONTAINERD_VERSION/$f.sha256sum"
    mkdir "$tmp/$d"; tar -xzf "$tmp/$f" -C "$tmp/$d" --strip-components=1 bin/containerd bin/containerd-shim-runc-v2 bin/ctr
    mv "$tmp/$d" "$RT/$d"
  fi
  d=runc-$RUNC_VERSION
  if [ ! -x "$RT/$d/runc" ]; then
    mkdir "$tmp/$d"; verified "$RU/$RUNC_VERSION/runc.$ARCH" "$tmp/$d/runc" "$RU/$RUNC_VERSION/runc.sha256sum"
    chmod 0755 "$tmp/$d/runc"; mv "$tmp/$d" "$RT/$d"
  fi
  d=cni-$CNI_VERSION
  if [ ! -x "$RT/$d/loopback" ]; then
    f=cni-plugins-linux-$ARCH-$CNI_VERSION.tgz
    verified "$CU/$CNI_VERSION/$f" "$tmp/$f" "$CU/$CNI_VERSION/$f.sha256"
    mkdir "$tmp/$d"; tar -xzf "$tmp/$f" -C "$tmp/$d" ./bridge ./host-local ./loopback
    mv "$tmp/$d" "$RT/$d"
  fi
  ln -sfn containerd-$CONTAINERD_VERSION "$RT/containerd"; ln -sfn runc-$RUNC_VERSION "$RT/runc"; ln -sfn cni-$CNI_VERSION "$RT/cni"
  echo "$RT"; exit 0
fi

need=; for b in kubeadm kubelet kubectl; do [ -x "$OUT/$b" ] || need="$need $b"; done
if [ -n "$need" ]; then
  mkdir -p "$OUT"
  tmp=$(mktemp -d "$OUT/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for b in $need; do
    u=$URL/$K8S_VERSION/bin/linux/$ARCH/$b
    echo "== $u" >&2
    get "$u.sha256" "$tmp/$b.sha256"
    want=$(awk '{print $1; exit}' "$tmp/$b.sha256")   # dl.k8s.io: the hex digest alone
    [[ $want =~ ^[0-9a-f]{64}$ ]] || die "$u.sha256 holds no sha256 digest: $(head -c 100 "$tmp/$b.sha256")"
    get "$u" "$tmp/$b"
    got=$(sha256sum "$tmp/$b" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "sha256 mismatch for $u: $u.sha256 says $want, the download is $got"
    chmod 0755 "$tmp/$b"; mv -f "$tmp/$b" "$OUT/$b"
  done
fi
echo "$OUT"
