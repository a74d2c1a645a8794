#!/bin/bash
# build-images.sh: the container images a kubeadm cluster runs, built FROM scratch from the binaries
# of build-k8s.sh, into one OCI layout: $SEALPACK_CACHE/k8s/$K8S_VERSION/images (prints its path).
# Each image is named as kubeadm expects it under registry.k8s.io, without the host (the bundle
# serves repositories without their registry host, and containerd's registry.k8s.io mirror points
# at the embedded registry):
#   kube-apiserver kube-controller-manager kube-scheduler kube-proxy:$K8S_VERSION, and etcd,
#   coredns/coredns and pause at the tags kubeadm $K8S_VERSION lists (`kubeadm config images list`:
#   etcd:3.7.0-0, coredns/coredns:v1.14.6, pause:3.10.2 for v1.37.2), which are the versions
#   build-k8s.sh built.
# kube-proxy's image also holds iptables (xtables-nft-multi, its extensions and libraries) from the
# Debian packages of fetch-debs.sh, plus the glibc it links from this (Debian 12) machine.
# An image already in the layout is kept; FORCE=1 rebuilds them all.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
BIN=$CACHE/k8s/$K8S_VERSION/bin
OUT=$CACHE/k8s/$K8S_VERSION/images
W=$CACHE/k8s/$K8S_VERSION/work
IMGTOOL=$CACHE/k8s/imgtool
[ "${FORCE:-}" = 1 ] && rm -rf "$OUT"
(cd "$HERE/mod/imgtool" && CGO_ENABLED=0 go build -o "$IMGTOOL" .)
DEBS=$("$HERE/fetch-debs.sh")
. "$HERE/lib.sh"
IMGS=$(k8s_images "$BIN/kubeadm" "$K8S_VERSION") || exit 1
tag() { k8s_image_tag "$IMGS" "$1"; }

has() { [ -f "$OUT/index.json" ] && grep -q "\"org.opencontainers.image.ref.name\": *\"$1\"" "$OUT/index.json"; }
img() { # img REF ENTRYPOINT ROOT
  has "$1" && { echo "$1 (cached)" >&2; return; }
  mkdir -p "$3/tmp" "$3/etc"; chmod 1777 "$3/tmp"
  [ -e "$3/etc/nsswitch.conf" ] || echo 'hosts: files dns' > "$3/etc/nsswitch.conf"
  "$IMGTOOL" build -layout "$OUT" -ref "$1" -entrypoint "$2" -root "$3" >&2
}
static() { # static REF BINARY PATH-IN-IMAGE
  local r=$W/$(echo "$1" | tr /: __); rm -rf "$r"; mkdir -p "$r$(dirname "$3")"
  cp "$BIN/$2" "$r$3"; img "$1" "$3" "$r"
}
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  static $c:$K8S_VERSION $c /usr/local/bin/$c
done
ETCD_TAG=$(tag etcd); COREDNS_TAG=$(tag coredns/coredns); PAUSE_TAG=$(tag pause)
static etcd:$ETCD_TAG etcd /usr/local/bin/etcd
static coredns/coredns:$COREDNS_TAG coredns /coredns
static pause:$PAUSE_TAG pause /pause

if ! has kube-proxy:$K8S_VERSION; then
  r=$W/kube-proxy; x=$W/kube-proxy.debs; rm -rf "$r" "$x"; mkdir -p "$r/usr/local/bin" "$r/usr/sbin" "$x"
  for p in iptables libip4tc2 libip6tc2 libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0 netbase; do
    dpkg -x "$DEBS"/${p}_*.deb "$x"
  done
  cp "$BIN/kube-proxy" "$r/usr/local/bin/"
  cp -a "$x/usr/sbin/xtables-nft-multi" "$r/usr/sbin/"
  for l in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore \
           iptables-nft iptables-nft-save iptables-nft-restore ip6tables-nft ip6tables-nft-save ip6tables-nft-restore; do
    ln -s xtables-nft-multi "$r/usr/sbin/$l"
  done
  mkdir -p "$r/usr/lib/x86_64-linux-gnu" "$r/etc"
  cp -a "$x/usr/lib/x86_64-linux-gnu/." "$r/usr/lib/x86_64-linux-gnu/"
  cp "$x/etc/protocols" "$x/etc/services" "$x/etc/ethertypes" "$r/etc/" 2>/dev/null || cp "$x"/etc/* "$r/etc/" || true
  # glibc and the loader, from this machine (Debian 12, the same glibc the packages were built for)
  for f in "$r/usr/sbin/xtables-nft-multi" "$r"/usr/lib/x86_64-linux-gnu/xtables/*.so; do
    LD_LIBRARY_PATH=$r/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true
  done | sort -u | while read -r l; do
    case $l in "$r"/*) continue;; esac
    mkdir -p "$r$(dirname "$l")"; cp -L "$l" "$r$l"
  done
  # the loader is looked up as /lib64/ld-linux-x86-64.so.2: keep Debian's merged-/usr layout
  if [ -d "$r/lib64" ] && [ ! -L "$r/lib64" ]; then mkdir -p "$r/usr/lib64"; cp -a "$r/lib64/." "$r/usr/lib64/"; rm -rf "$r/lib64"; ln -s usr/lib64 "$r/lib64"; fi
  if [ -d "$r/lib" ] && [ ! -L "$r/lib" ]; then cp -a "$r/lib/." "$r/usr/lib/"; rm -rf "$r/lib"; ln -s usr/lib "$r/lib"; fi
  img kube-proxy:$K8S_VERSION /usr/local/bin/kube-proxy "$r"
fi
echo "$OUT"
