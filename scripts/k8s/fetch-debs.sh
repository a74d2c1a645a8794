#!/bin/bash
# fetch-debs.sh: the Debian 12 (bookworm) packages the kubernetes base image carries, downloaded
# once with apt-get into $SEALPACK_CACHE/debs/bookworm (default /var/cache/sealpack).
#
# Why Debian packages and not Go modules:
#   containerd 1.6.20, runc 1.1.5, containernetworking-plugins 1.1.1: the exact builds proven with
#     kubeadm 1.37 on the test hosts (TESTBED-K8S.md), no build time, Debian security updates.
#     They are unpacked with dpkg -x into the rootfs (bin/), never dpkg -i'd: Debian's containerd
#     unit cannot start on these hosts, so the image ships its own unit. containerd 2.x (needed
#     from Kubernetes 1.38 on) is a Go module (github.com/containerd/containerd/v2) when it is time.
#   iptables, conntrack, socat, ethtool and the libraries they link: C programs (no Go module); the
#     host needs them on its PATH (kubeadm preflight, the CNI bridge plugin's masquerade rules,
#     kubectl port-forward). init-host.sh dpkg -i's those a Debian host lacks, all at once.
#     nftables (nft): reset-host.sh deletes the netfilter tables the install created, which
#     iptables-nft cannot do.
# Usage: fetch-debs.sh     prints the folder
set -euo pipefail
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
D=$CACHE/debs/bookworm
RUNTIME="containerd runc containernetworking-plugins"
HOSTTOOLS="iptables libip4tc2 libip6tc2 libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0 netbase conntrack socat libwrap0 ethtool nftables libnftables1 libjansson4 libedit2"
mkdir -p "$D/runtime" "$D/host"
get() { # get DIR PKG...: download each package not already there
  local dir=$1; shift; local need=
  for p in "$@"; do ls "$dir/${p}_"*.deb >/dev/null 2>&1 || need="$need $p"; done
  [ -z "$need" ] || (cd "$dir" && apt-get download $need >&2)
}
get "$D/runtime" $RUNTIME
get "$D/host" $HOSTTOOLS
echo "$D"
