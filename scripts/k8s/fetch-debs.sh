#!/bin/bash
# fetch-debs.sh: the userland of the kube-proxy container image (build-images.sh), nothing else:
# kube-proxy in iptables mode runs iptables (xtables-nft-multi, nf_tables backend) inside its own
# container, so that image carries iptables and the libraries it links as Debian 12 (bookworm)
# packages, downloaded once with apt-get into $SEALPACK_CACHE/debs/bookworm/kube-proxy (default
# /var/cache/sealpack) and unpacked with dpkg -x into the image (with this machine's glibc).
# No host gets a package any more: the kubernetes base image carries static binaries only
# (build-runtime.sh, whose header says where each former host tool went).
# Usage: fetch-debs.sh     prints the folder of the .deb files
set -euo pipefail
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
D=$CACHE/debs/bookworm/kube-proxy
PKGS="iptables libip4tc2 libip6tc2 libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0 netbase"
mkdir -p "$D"
need=
for p in $PKGS; do ls "$D/${p}_"*.deb >/dev/null 2>&1 || need="$need $p"; done
[ -z "$need" ] || (cd "$D" && apt-get download $need >&2)
echo "$D"
