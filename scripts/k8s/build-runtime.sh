#!/bin/bash
# build-runtime.sh: the container runtime and host helpers the kubernetes base image carries, built
# once per version from the Go module proxy, every binary statically linked, so they run on any
# x86_64/arm64 Linux whatever its libc (or none). Prints the folder:
#   $SEALPACK_CACHE/runtime/linux-$GOARCH      (SEALPACK_CACHE defaults to /var/cache/sealpack)
# holding one folder per component and version, each renamed in only once complete, and a link
# without the version to the one built last (containerd/ runc/ cni/ sealpack-nft/):
#   containerd-$CONTAINERD_VERSION/  containerd containerd-shim-runc-v2 ctr
#         github.com/containerd/containerd/v2, CGO_ENABLED=0 with the tags of upstream's static
#         release (`make STATIC=1`: urfave_cli_no_docs osusergo netgo static_build; the shim also no_grpc)
#   runc-$RUNC_VERSION/  runc
#         github.com/opencontainers/runc; cgo (libcontainer/nsenter is C), linked -static against
#         Debian's libseccomp.a (libseccomp-dev) with the tags of upstream's `make static` minus
#         libpathrs (a Rust library; runc falls back to its Go implementation of the same checks).
#         Without libseccomp.a the build fails: seccomp filters are part of every pod's default
#         profile the kubelet asks for, so a runc without seccomp is not offered silently.
#   cni-$CNI_VERSION/  bridge host-local loopback
#         github.com/containernetworking/plugins, CGO_ENABLED=0. The pod network (cni-sync.sh) is
#         a bridge with host-local IPAM; containerd's CRI sets up each pod's lo with loopback.
#   sealpack-nft-$NFTABLES_VERSION-$SRC_HASH/  sealpack-nft
#         scripts/k8s/mod/nft: the netfilter work the host itself does, in pure Go netlink
#         (github.com/google/nftables), so no host needs nft or iptables (see "Host tools" below).
# Each build uses the module's own go.mod (go install MODULE/cmd@VERSION: the dependency versions
# upstream released and tested) and checks the version against the module proxy (go list -m).
#
# Host tools: the image once carried iptables, conntrack, socat, ethtool and nftables as Debian
# packages (fetch-debs.sh, dpkg -i by init-host.sh). Now no host tool comes from a package:
#   iptables   kube-proxy runs in its own container image, which carries its own iptables
#              (build-images.sh). The CNI bridge masquerade (ipMasq) would call the host's iptables:
#              it stays off, and sealpack-nft masquerade does the pod masquerade instead. kubeadm's
#              preflight FileExisting-iptables error is ignored (lib.sh node_registration): nothing
#              on the host runs iptables. reset-host.sh removes the KUBE-/CNI- chains kube-proxy
#              added to tables the host had (sealpack-nft delete-chains) instead of iptables-save.
#   nft        reset-host.sh deletes the netfilter tables the install created: sealpack-nft
#              list-tables / delete-table.
#   conntrack  kubeadm no longer checks for it; kube-proxy clears UDP conntrack entries over
#              netlink from its own container.
#   socat      kubectl port-forward: containerd 2's CRI forwards in Go (no socat since 1.7).
#   ethtool    optional in kubeadm's preflight (a warning); nothing in the install calls it.
# What a host must have and cannot be carried: systemd as PID 1, a kernel with overlayfs,
# br_netfilter, bridge, veth and nf_tables (modules or built in), cgroups (v1 or v2), and the basic
# userland the phase scripts use (bash, coreutils, mount, nsenter, ip, awk, sed, grep): init-host.sh
# names what is missing, all at once, before it changes anything.
#
# Usage: build-runtime.sh [containerd|runc|cni|sealpack-nft ...]   (default: all; base-image.sh
#        SOURCE=release builds only sealpack-nft and takes the others from fetch-release.sh runtime)
# Env: CONTAINERD_VERSION RUNC_VERSION CNI_VERSION (defaults below), SEALPACK_CACHE, GOARCH
#      (default: go env GOARCH; runc's cgo build needs a C cross compiler for another one).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
RUNC_VERSION=${RUNC_VERSION:-v1.5.3}
CNI_VERSION=${CNI_VERSION:-v1.10.0}
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GOARCH=${GOARCH:-$(go env GOARCH)}
OUT=$CACHE/runtime/linux-$GOARCH
export GOOS=linux GOARCH GOFLAGS=-buildvcs=false GOTOOLCHAIN=${GOTOOLCHAIN:-local}
die() { echo "build-runtime.sh: $*" >&2; exit 1; }
want=${*:-containerd runc cni sealpack-nft}
mkdir -p "$OUT"

# checked MODULE VERSION: the module proxy knows that version (a typo fails here, not mid-build)
checked() {
  local got; got=$(cd "$HERE/mod/nft" && go list -m -f '{{.Version}}' "$1@$2" 2>&1) ||
    die "$1@$2: not served by the module proxy: $got"
  [ "$got" = "$2" ] || die "$1@$2: the proxy answers $got"
}
# build NAME BINARY... -- COMMAND...: COMMAND (go install calls) with GOBIN a temporary folder,
# renamed to $OUT/NAME once it holds every BINARY; skipped when $OUT/NAME has them all already
build() {
  local name=$1 bins=() b tmp t0=$SECONDS miss=; shift
  while [ "$1" != -- ]; do bins+=("$1"); shift; done; shift
  for b in "${bins[@]}"; do [ -x "$OUT/$name/$b" ] || miss=1; done
  [ -n "$miss" ] || return 0
  echo "== $name ($(date +%T))" >&2
  tmp=$(mktemp -d "$OUT/.build.XXXXXX")
  GOBIN=$tmp "$@" >&2 || { rm -rf "$tmp"; die "$name: the build failed (above)"; }
  for b in "${bins[@]}"; do [ -x "$tmp/$b" ] || { rm -rf "$tmp"; die "$name: $b was not built"; }; done
  rm -rf "${OUT:?}/$name"; mv "$tmp" "$OUT/$name"
  echo "   $name: $(( SECONDS - t0 )) s" >&2
}

CD=github.com/containerd/containerd/v2
containerd_install() {
  local ld="-s -w -X $CD/version.Version=$CONTAINERD_VERSION -X $CD/version.Package=$CD"
  local tags="urfave_cli_no_docs osusergo netgo static_build"
  CGO_ENABLED=0 go install -trimpath -tags "$tags" -ldflags "$ld" \
    "$CD/cmd/containerd@$CONTAINERD_VERSION" "$CD/cmd/ctr@$CONTAINERD_VERSION" &&
  CGO_ENABLED=0 go install -trimpath -tags "$tags no_grpc" -ldflags "$ld" \
    "$CD/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}
runc_install() {
  CGO_ENABLED=1 go install -trimpath -tags "seccomp urfave_cli_no_docs netgo osusergo" \
    -ldflags "-s -w -extldflags -static" "github.com/opencontainers/runc@$RUNC_VERSION"
}
cni_install() {
  local p=github.com/containernetworking/plugins
  CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X $p/pkg/utils/buildversion.BuildVersion=$CNI_VERSION" \
    "$p/plugins/main/bridge@$CNI_VERSION" "$p/plugins/ipam/host-local@$CNI_VERSION" "$p/plugins/main/loopback@$CNI_VERSION"
}
nft_install() {
  (cd "$HERE/mod/nft" && CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" .)
}

wants() { [[ " $want " == *" $1 "* ]]; }
if wants containerd; then
  checked $CD "$CONTAINERD_VERSION"
  build containerd-$CONTAINERD_VERSION containerd containerd-shim-runc-v2 ctr -- containerd_install
  ln -sfn containerd-$CONTAINERD_VERSION "$OUT/containerd"   # the names base-image.sh uses
fi
if wants runc; then
  checked github.com/opencontainers/runc "$RUNC_VERSION"
  build runc-$RUNC_VERSION runc -- runc_install
  ln -sfn runc-$RUNC_VERSION "$OUT/runc"
fi
if wants cni; then
  checked github.com/containernetworking/plugins "$CNI_VERSION"
  build cni-$CNI_VERSION bridge host-local loopback -- cni_install
  ln -sfn cni-$CNI_VERSION "$OUT/cni"
fi
if wants sealpack-nft; then
  # the helper's folder is named by its source, so an edit rebuilds it
  nfthash=$(cat "$HERE"/mod/nft/go.mod "$HERE"/mod/nft/go.sum "$HERE"/mod/nft/*.go | sha256sum | cut -c1-12)
  build sealpack-nft-$nfthash sealpack-nft -- nft_install
  ln -sfn sealpack-nft-$nfthash "$OUT/sealpack-nft"
fi
echo "$OUT"
