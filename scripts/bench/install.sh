#!/usr/bin/env bash
# Install benchmark: a ~1 GiB bundle installed on 1, 3 and 6 namespaced hosts,
# then the same with every host's link limited to 200 Mbit/s (tc tbf).
# Prints seconds and the 6-host / 1-host ratio (goal <= 1.5x). Needs root.
# Usage: scripts/bench/install.sh [SIZE_MIB] (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
work=$(mktemp -d /var/tmp/sealpack-bench-install.XXXXXX)
bed=benchinst$$
trap 'scripts/testbed/testbed.sh down $bed >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

make -s gen >/dev/null
ctx=$work/ctx
mkdir -p "$ctx/data"
cp -r testdata/e2e/image/scripts testdata/e2e/image/etc "$ctx/"
# Half random (incompressible, like images and binaries), half text.
head -c $((size_mib / 2))M /dev/urandom > "$ctx/data/random.bin"
# (cat repeats the sources until the size is reached; head ends the pipe early.)
{ while :; do find /usr/local/go/src -type f -name '*.go' -print0 | xargs -0 cat 2>/dev/null || break; done; } | head -c $((size_mib / 2))M > "$ctx/data/text.txt" || true
cat > "$ctx/Kubefile" <<'KF'
FROM scratch
ENV TEST_IMAGE_ENV=bench
COPY scripts /scripts
COPY etc /etc
COPY data /data
KF
./bin/gen -f "$ctx/Kubefile" -o "$work/installer.run" >/dev/null
bundle_size=$(stat -c %s "$work/installer.run")

run() { # hosts bandwidth
  local n=$1 bw=$2 args=()
  if [ "$bw" != none ]; then for i in $(seq 1 "$n"); do args+=(--bandwidth "$i=$bw"); done; fi
  scripts/testbed/testbed.sh up "$bed" "$n" --dir "$work/bed" "${args[@]}" >/dev/null
  local net; net=$(sed -n 's/^SUBNET=//p' "$work/bed/bed.env" | cut -d/ -f1 | sed 's/\.0$//')
  local nodes=""
  for i in $(seq 2 "$n"); do nodes="$nodes${nodes:+, }$net.$i"; done
  {
    printf 'apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: bench\nspec:\n  hosts:\n    - ips: [%s.1]\n      roles: [master]\n' "$net"
    [ -n "$nodes" ] && printf '    - ips: [%s]\n      roles: [node]\n' "$nodes"
    printf '  ssh:\n    user: root\n    pk: %s\n' "$work/bed/client_key"
  } > "$work/cluster.yaml"
  local start end
  start=$(date +%s.%N)
  "$work/installer.run" install --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" > "$work/install-$n-$bw.log" 2>&1 \
    || { echo "install on $n hosts failed:" >&2; tail -20 "$work/install-$n-$bw.log" >&2; exit 1; }
  end=$(date +%s.%N)
  scripts/testbed/testbed.sh down "$bed" >/dev/null
  rm -rf "$work/bed" "$work/state"
  local sent; sent=$(grep -o 'sent [0-9.]* [KMG]iB from this machine' "$work/install-$n-$bw.log" | head -1)
  secs=$(echo "$end - $start" | bc)
  t[$n-$bw]=$secs
  printf '%-6s %-10s %-9.2f %s\n' "$n" "$bw" "$secs" "$sent"
}

echo "bundle: $((bundle_size / 1048576)) MiB; machine: $(nproc) cores"
printf '%-6s %-10s %-9s %s\n' hosts link seconds "this machine sent"
declare -A t
for bw in none 200mbit; do
  for n in 1 3 6; do
    run "$n" "$bw"
  done
  printf 'ratio 6/1 hosts (%s): %.2fx (goal <= 1.5x)\n' "$bw" "$(echo "${t[6-$bw]} / ${t[1-$bw]}" | bc -l)"
done
