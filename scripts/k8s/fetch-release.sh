#!/bin/bash
# fetch-release.sh: kubeadm, kubelet and kubectl $K8S_VERSION as the Kubernetes project releases
# them, for base-image.sh SOURCE=release (build machines with internet). Prints the folder:
#   $K8S_RELEASE_CACHE/$K8S_VERSION/linux-$ARCH/bin   (K8S_RELEASE_CACHE: $SEALPACK_CACHE/k8s-release)
# Each NAME comes from $K8S_RELEASE_URL/$K8S_VERSION/bin/linux/$ARCH/NAME (default
# K8S_RELEASE_URL=https://dl.k8s.io/release) and must match the digest in the NAME.sha256 published
# beside it. A binary already in the folder is not downloaded again (a second run needs no network).
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

need=; for b in kubeadm kubelet kubectl; do [ -x "$OUT/$b" ] || need="$need $b"; done
if [ -n "$need" ]; then
  mkdir -p "$OUT"
  tmp=$(mktemp -d "$OUT/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  get() { # get URL FILE
    curl --fail --silent --show-error --location --connect-timeout "${CONNECT_TIMEOUT:-10}" \
      --speed-limit 1024 --speed-time 30 -o "$2" "$1" \
      || die "cannot download $1 (curl says why above; without internet use SOURCE=module or a reachable K8S_RELEASE_URL)"
  }
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
