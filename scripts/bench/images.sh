#!/usr/bin/env bash
# Image fetch benchmark: 20 images (~500 MB) in a loopback registry.
# Cold gen build vs `crane pull` of the same images one after another, and a
# warm rebuild (blob cache hit) vs the cold build.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-20} SIZE=${SIZE:-$((25 << 20))}
CRANE_VERSION=$(go list -m -f '{{.Version}}' github.com/google/go-containerregistry)
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/benchreg" ./generator/internal/testreg/benchreg
make gen >/dev/null
GOBIN="$work" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"

mkdir -p "$work/reg" "$work/ctx"
"$work/benchreg" -dir "$work/reg" -images "$N" -size "$SIZE" -list "$work/ctx/imageList" &
pid=$!
while [ ! -s "$work/ctx/imageList" ]; do kill -0 "$pid"; sleep 0.2; done
printf 'FROM scratch\nCOPY imageList /manifests/imageList\n' >"$work/ctx/Kubefile"

now() { date +%s.%N; }
t0=$(now)
while read -r ref; do "$work/crane" pull "$ref" "$work/crane.tar"; rm -f "$work/crane.tar"; done <"$work/ctx/imageList"
t1=$(now)
XDG_CACHE_HOME="$work/cache" ./bin/gen -f "$work/ctx/Kubefile" -o "$work/cold.run" 2>/dev/null
t2=$(now)
XDG_CACHE_HOME="$work/cache" ./bin/gen -f "$work/ctx/Kubefile" -o "$work/warm.run" 2>/dev/null
t3=$(now)
cmp -s "$work/cold.run" "$work/warm.run" || { echo "warm rebuild differs from cold build" >&2; exit 1; }
# The floor of a rebuild that copies: cp (coreutils uses copy_file_range).
sync
t4=$(now)
cp "$work/cold.run" "$work/copy.run"
t5=$(now)

size=$(stat -c %s "$work/cold.run")
awk -v c="$t0" -v d="$t1" -v e="$t2" -v f="$t3" -v g="$t4" -v h="$t5" -v n="$N" -v s="$size" 'BEGIN {
  crane = d - c; cold = e - d; warm = f - e; cp = h - g
  printf "images: %d, installer %.0f MB\n", n, s / 1048576
  printf "crane pull, one after another: %6.2f s\n", crane
  printf "gen cold build:                %6.2f s  (%.2fx crane; goal <= 0.7x)\n", cold, cold / crane
  printf "gen warm rebuild:              %6.2f s  (%.0f%% of cold; goal <= 10%%)\n", warm, 100 * warm / cold
  printf "cp of the installer (floor):   %6.2f s  (%.0f%% of cold)\n", cp, 100 * cp / cold
}'
