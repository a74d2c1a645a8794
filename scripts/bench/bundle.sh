#!/usr/bin/env bash
# Walking-skeleton benchmarks of the bundle format (issue 2): gen, verify,
# extract and inspect against the standard tools doing the same work, plus
# peak RSS. Prints figures and ratios; nothing here passes or fails.
#
# Usage: scripts/bench/bundle.sh            (or: make bench)
#
# Environment:
#   BENCH_DIR=DIR      work here instead of a new temp dir (kept afterwards)
#   BENCH_RUNS=N       timed runs per command (default 5)
#   BENCH_CACHE=warm   warm: one warm-up run, both sides read from the page cache
#                cold  drop the page cache before every run (needs root)
#   BENCH_BIG=0        skip the 4 GiB bundle (inspect and RSS at 4 GiB)
#   BENCH_GEN=PATH     gen binary to use (default: make gen, then bin/gen)
#
# Needs hyperfine, zstd, GNU tar, openssl, jq, /usr/bin/time (Debian: time).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${BENCH_RUNS:-5}
CACHE=${BENCH_CACHE:-warm}
BIG=${BENCH_BIG:-1}

for tool in hyperfine zstd tar openssl jq /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bundle.sh: $tool is required (apt-get install -y hyperfine zstd jq time)" >&2; exit 2; }
done

if [[ -n ${BENCH_GEN:-} ]]; then
	GEN=$BENCH_GEN
else
	make -s -C "$ROOT" gen >/dev/null
	GEN=$ROOT/bin/gen
fi

if [[ -n ${BENCH_DIR:-} ]]; then
	WORK=$BENCH_DIR
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/sealpack-bench.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
fi
cd "$WORK"

case $CACHE in
warm) PREP_CACHE=true; WARMUP=(--warmup 1) ;;
cold)
	[[ -w /proc/sys/vm/drop_caches ]] || { echo "bundle.sh: BENCH_CACHE=cold needs root" >&2; exit 2; }
	PREP_CACHE='sync; echo 3 > /proc/sys/vm/drop_caches'; WARMUP=()
	;;
*) echo "bundle.sh: BENCH_CACHE must be warm or cold" >&2; exit 2 ;;
esac

# keystream SEED BYTES: deterministic incompressible bytes (AES-256-CTR of zeros).
keystream() {
	head -c "$2" /dev/zero | openssl enc -aes-256-ctr -nosalt -pass "pass:sealpack-bench-$1" -pbkdf2 2>/dev/null
}

# make_data DIR: ~1 GiB of mixed files, the same bytes every time:
# 5 copies of the Go toolchain binaries (~415 MiB), 2 copies of the Go
# sources (~315 MiB, ~23k files) and ~330 MiB of random files of 1-64 MiB.
make_data() {
	local d=$1 goroot
	goroot=$(go env GOROOT)
	mkdir -p "$d"
	for i in 1 2 3 4 5; do
		mkdir -p "$d/bin$i"
		cp "$goroot"/bin/* "$goroot"/pkg/tool/*/* "$d/bin$i/"
	done
	for i in 1 2; do
		mkdir -p "$d/src$i"
		cp -r "$goroot/src/." "$d/src$i/"
	done
	mkdir -p "$d/random"
	local n=0
	for mib in 1 2 3 5 8 13 21 34 55 64 64 64; do
		n=$((n + 1))
		keystream "r$n" $((mib << 20)) >"$d/random/r$n.bin"
	done
}

# make_big DIR: 4 GiB of random files in 4 folders, for a Kubefile of 4 COPYs.
make_big() {
	local d=$1
	for c in 1 2 3 4; do
		mkdir -p "$d/part$c"
		for f in 1 2 3 4; do
			keystream "big$c-$f" $((256 << 20)) >"$d/part$c/f$f.bin"
		done
	done
}

# means CSV: "wall cpu" mean seconds of each command in a hyperfine CSV, one
# command a line (cpu = user + system: steadier than wall time on a busy box).
means() { awk -F, 'NR > 1 { print $2, $5 + $6 }' "$1"; }

# bench NAME PREP_A CMD_A PREP_B CMD_B: time both commands, each run after
# its own preparation (plus the cache policy); prints "wall_a cpu_a wall_b cpu_b".
bench() {
	local name=$1
	hyperfine --style basic --runs "$RUNS" "${WARMUP[@]}" --export-csv "$WORK/$name.csv" \
		--prepare "$2; $PREP_CACHE" "$3" --prepare "$4; $PREP_CACHE" "$5" \
		>"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log" >&2; exit 1; }
	means "$WORK/$name.csv" | paste -sd' '
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f ms", s * 1000 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# rss_kb CMD...: peak RSS in KiB of one run.
rss_kb() {
	/usr/bin/time -f '%M' -o "$WORK/rss.txt" "$@" >/dev/null 2>&1
	cat "$WORK/rss.txt"
}

echo "# sealpack bundle benchmarks"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
echo "go: $(go version | cut -d' ' -f3), commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- bundle rootfs || echo +dirty)"
echo "cache: $CACHE, runs: $RUNS, work dir: $WORK"

[[ -d data ]] || make_data data
printf 'FROM scratch\nCOPY data /data\n' >Kubefile
echo "data: $(du -sb data | cut -f1 | xargs -I{} awk -v b={} 'BEGIN { printf "%.2f GiB", b / 1073741824 }'), $(find data -type f | wc -l) files"
echo

# gen vs tar | zstd: both write their output to the same disk.
read -r t_gen c_gen t_zst c_zst < <(bench gen \
	"rm -f installer.run" "$GEN -f Kubefile -o installer.run" \
	"rm -f data.tar.zst" "tar -c data | zstd -T0 -3 -q -f -o data.tar.zst")
s_gen=$(stat -c %s installer.run)
s_zst=$(stat -c %s data.tar.zst)
# The installer also carries its ~20 MiB stub: compare the compressed layer too.
s_layer=$(./installer.run inspect --json | jq '.index as $i | $i.layers[0].digest as $d | $i.blobs[] | select(.digest == $d) | .size')

# verify vs sha256sum.
read -r t_ver c_ver t_sha c_sha < <(bench verify \
	true "./installer.run verify" \
	true "sha256sum installer.run")

# extract vs zstd -d | tar -x.
read -r t_ext c_ext t_untar c_untar < <(bench extract \
	"rm -rf out-run" "./installer.run extract --to out-run" \
	"rm -rf out-tar; mkdir out-tar" "zstd -d -c data.tar.zst | tar -x -C out-tar")
diff -r out-run/data out-tar/data >/dev/null || echo "WARNING: extract and tar -x trees differ" >&2
rm -rf out-run out-tar

rss_gen=$(rss_kb "$GEN" -f Kubefile -o installer.run)
rss_ver=$(rss_kb ./installer.run verify)

# inspect at 1 GiB and 4 GiB.
inspect_runs=(--runs 50 --warmup 3 -N)
hyperfine --style basic "${inspect_runs[@]}" --export-csv "$WORK/inspect1.csv" \
	"./installer.run inspect" >"$WORK/inspect1.log" 2>&1
t_ins1=$(means "$WORK/inspect1.csv" | cut -d" " -f1)
t_ins4= rss_big= s_big=
if [[ $BIG == 1 ]]; then
	[[ -d big ]] || make_big big
	printf 'FROM scratch\nCOPY big/part1 /p1\nCOPY big/part2 /p2\nCOPY big/part3 /p3\nCOPY big/part4 /p4\n' >Kubefile.big
	rss_big=$(rss_kb "$GEN" -f Kubefile.big -o big.run)
	s_big=$(stat -c %s big.run)
	hyperfine --style basic "${inspect_runs[@]}" --export-csv "$WORK/inspect4.csv" \
		"./big.run inspect" >"$WORK/inspect4.log" 2>&1
	t_ins4=$(means "$WORK/inspect4.csv" | cut -d" " -f1)
	rm -f big.run
fi

printf '\n| %-40s | %12s | %12s | %6s | %s\n' "benchmark" "sealpack" "baseline" "ratio" "goal"
printf '|%s|%s|%s|%s|%s\n' "------------------------------------------" "--------------" "--------------" "--------" "-----"
row() { printf '| %-40s | %12s | %12s | %6s | %s\n' "$@"; }
row "gen vs tar -c | zstd -T0 -3 (wall)" "$(ms "$t_gen")" "$(ms "$t_zst")" "$(ratio "$t_gen" "$t_zst")" "≤ 1.10"
row "gen vs tar -c | zstd -T0 -3 (cpu)" "$(ms "$c_gen")" "$(ms "$c_zst")" "$(ratio "$c_gen" "$c_zst")" ""
row "gen vs tar -c | zstd -T0 -3 (size)" "$(mib "$s_gen")" "$(mib "$s_zst")" "$(ratio "$s_gen" "$s_zst")" "≤ 1.00"
row "  layer blob only (no stub)" "$(mib "$s_layer")" "$(mib "$s_zst")" "$(ratio "$s_layer" "$s_zst")" "≤ 1.00"
row "verify vs sha256sum (wall)" "$(ms "$t_ver")" "$(ms "$t_sha")" "$(ratio "$t_ver" "$t_sha")" "≤ 1.10"
row "verify vs sha256sum (cpu)" "$(ms "$c_ver")" "$(ms "$c_sha")" "$(ratio "$c_ver" "$c_sha")" ""
row "extract vs zstd -d | tar -x (wall)" "$(ms "$t_ext")" "$(ms "$t_untar")" "$(ratio "$t_ext" "$t_untar")" "≤ 1.00"
row "extract vs zstd -d | tar -x (cpu)" "$(ms "$c_ext")" "$(ms "$c_untar")" "$(ratio "$c_ext" "$c_untar")" ""
row "inspect, 1 GiB bundle" "$(ms "$t_ins1")" "" "" "< 50 ms"
if [[ -n $t_ins4 ]]; then
	row "inspect, 4 GiB bundle ($(mib "$s_big"))" "$(ms "$t_ins4")" "$(ms "$t_ins1")" "$(ratio "$t_ins4" "$t_ins1")" "< 50 ms, ≈ 1 GiB"
fi
row "peak RSS gen, 1 GiB" "$((rss_gen / 1024)) MiB" "" "" ""
row "peak RSS verify, 1 GiB" "$((rss_ver / 1024)) MiB" "" "" ""
if [[ -n $rss_big ]]; then
	row "peak RSS gen, 4 GiB" "$((rss_big / 1024)) MiB" "" "" "< 200 MB"
fi
