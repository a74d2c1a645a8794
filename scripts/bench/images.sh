#!/usr/bin/env bash
# Image fetch benchmark: 20 images (~500 MB) in a loopback registry.
# Cold gen build vs `crane pull` of the same images one after another, and a
# warm rebuild (blob cache hit) vs the cold build; `cp` of the installer
# (coreutils uses copy_file_range), alone and followed by an fsync as gen
# does, as the floor of a rebuild that copies.
#
# Environment:
#   N=20, SIZE=26214400   images, and bytes of random layer data per image
#   BENCH_RUNS=3          rounds; each round times every command once, in turn,
#                         and the medians are printed (the VM is shared: wall
#                         times move a lot between rounds, ratios less)
#   BENCH_GEN_BASE=PATH   also time this gen binary (e.g. one built at an older
#                         commit) in every round, with its own cache, so
#                         before/after compare under the same load
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-20} SIZE=${SIZE:-$((25 << 20))} RUNS=${BENCH_RUNS:-3} BASE=${BENCH_GEN_BASE:-}
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

# timed NAME CMD...: appends "NAME wall cpu" (cpu = user + sys) to $work/times.
timed() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S" -o "$work/t" "$@"
	awk -v n="$name" '{ printf "%s %s %.2f\n", n, $1, $2 + $3 }' "$work/t" >>"$work/times"
}
pulls() { while read -r ref; do "$work/crane" pull "$ref" "$work/crane.tar"; rm -f "$work/crane.tar"; done <"$work/ctx/imageList"; }
export -f pulls
export work
# build NAME GEN: a cold build into an empty cache, then a warm rebuild.
build() {
	rm -rf "$work/cache-$1" "$work"/*.run
	sync
	XDG_CACHE_HOME="$work/cache-$1" timed "$1-cold" "$2" -f "$work/ctx/Kubefile" -o "$work/cold.run" >/dev/null 2>&1
	sync
	XDG_CACHE_HOME="$work/cache-$1" timed "$1-warm" "$2" -f "$work/ctx/Kubefile" -o "$work/warm.run" >/dev/null 2>&1
	cmp -s "$work/cold.run" "$work/warm.run" || { echo "$1: warm rebuild differs from cold build" >&2; exit 1; }
	sync
	timed "$1-cp" cp "$work/cold.run" "$work/copy.run"
	rm -f "$work/copy.run"
	sync
	# gen syncs the installer before renaming it into place: so does this floor.
	timed "$1-cpsync" bash -c 'cp "$0" "$1" && sync "$1"' "$work/cold.run" "$work/copy.run"
	size=$(stat -c %s "$work/cold.run")
}

: >"$work/times"
for ((r = 1; r <= RUNS; r++)); do
	timed crane bash -c pulls
	build gen ./bin/gen
	[ -z "$BASE" ] || build base "$BASE"
done

# Medians of wall and cpu per command, and of the per-round ratios.
awk -v n="$N" -v s="$size" -v runs="$RUNS" -v base="$BASE" '
function median(a, k,   i, j, t) {
  for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
  return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
}
{ c[$1]++; wall[$1, c[$1]] = $2; cpu[$1, c[$1]] = $3 }
function med(name, what,   a, i) { for (i = 1; i <= c[name]; i++) a[i] = (what == "cpu" ? cpu[name, i] : wall[name, i]); return median(a, c[name]) }
function medratio(x, y,   a, i) { for (i = 1; i <= c[x]; i++) a[i] = wall[x, i] / wall[y, i]; return median(a, c[x]) }
function report(g, label) {
  printf "%s cold build:      %6.2f s wall %5.2f s cpu  (%.2fx crane; goal <= 0.7x)\n", label, med(g "-cold"), med(g "-cold", "cpu"), medratio(g "-cold", "crane")
  printf "%s warm rebuild:    %6.2f s wall %5.2f s cpu  (%.0f%% of cold; goal <= 10%%)\n", label, med(g "-warm"), med(g "-warm", "cpu"), 100 * medratio(g "-warm", g "-cold")
  printf "%s cp of installer: %6.2f s wall %5.2f s cpu  (warm is %.2fx cp)\n", label, med(g "-cp"), med(g "-cp", "cpu"), medratio(g "-warm", g "-cp")
  printf "%s cp, then fsync:  %6.2f s wall %5.2f s cpu  (warm is %.2fx; %.0f%% of cold)\n", label, med(g "-cpsync"), med(g "-cpsync", "cpu"), medratio(g "-warm", g "-cpsync"), 100 * medratio(g "-cpsync", g "-cold")
}
END {
  printf "images: %d, installer %.0f MB, medians of %d rounds (ratios: median of each round'"'"'s ratio)\n", n, s / 1048576, runs
  printf "crane pull, one after another: %6.2f s wall %5.2f s cpu\n", med("crane"), med("crane", "cpu")
  report("gen", "gen ")
  if (base != "") report("base", "base")
}' "$work/times"
