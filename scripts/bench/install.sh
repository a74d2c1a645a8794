#!/usr/bin/env bash
# Install benchmark (issue 15): the test cluster image (testdata/e2e/image) with a payload of
# random data (16 MiB and ~70 MiB by default: 40 and 93 MiB installers) installed on 1, 10, 40
# and 100 namespaced hosts (1 master + N-1 nodes), every host's link and the installing
# machine's bridge limited to 200 Mbit/s with tc (tbf). For each run it prints wall seconds, the
# time of every phase, the installer's peak RSS (VmHWM) and peak open descriptors (sampled every
# 0.2 s), and the bytes this machine sent into the bed (the bridge device's transmit counter:
# traffic between hosts never crosses it) as a multiple of the installer, and the CPU seconds the
# whole machine was busy meanwhile (/proc/stat: the bed's sshd, agents and scripts share its
# cores, so busy CPU seconds / cores is the shortest the run could have taken here; near the wall
# time, the cores are the limit, not the links or the installer), and the installer's own CPU
# seconds (what a site's installing machine spends: the rest runs on the hosts' own cores there);
# then the 40-host / 1-host ratio. A slow BENCH_RATE (10mbit) makes the links the limit instead of
# the shared cores, as on a site whose hosts each have their own. Needs root. A failed run's logs
# are kept (BENCH_KEEP).
#
# Usage: scripts/bench/install.sh
#   BENCH_PAYLOADS="16 70"   payload sizes in MiB
#   BENCH_HOSTS="1 10 40 100" host counts (one bed of the largest is built, and reset between runs)
#   BENCH_RATE=200mbit       tc rate, "none" for unlimited
#   BENCH_PARALLEL=          the installer's --parallel (empty: its default)
#   BENCH_KEEP=/var/tmp/sealpack-bench-logs   where a failed run's logs are kept (the work
#                            directory, with the bed, goes when the script exits)
set -euo pipefail
cd "$(dirname "$0")/../.."
payloads=${BENCH_PAYLOADS:-16 70}
hosts=${BENCH_HOSTS:-1 10 40 100}
rate=${BENCH_RATE:-200mbit}
parallel=()
[ -z "${BENCH_PARALLEL:-}" ] || parallel=(--parallel "$BENCH_PARALLEL")
keep=${BENCH_KEEP:-/var/tmp/sealpack-bench-logs}
work=$(mktemp -d /var/tmp/sealpack-bench-install.XXXXXX)
bed=benchinst$$
trap 'scripts/testbed/testbed.sh down $bed >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# Any other failure says where it happened instead of ending the run silently.
trap 'echo "install.sh: line $LINENO: exit status $? (load $(cut -d" " -f1-3 /proc/loadavg))" >&2' ERR

make -s gen >/dev/null
max=0
for n in $hosts; do [ "$n" -gt "$max" ] && max=$n; done
bw=()
if [ "$rate" != none ]; then for i in $(seq 1 "$max"); do bw+=(--bandwidth "$i=$rate"); done; fi
t0=$(date +%s)
scripts/testbed/testbed.sh up "$bed" "$max" --dir "$work/bed" "${bw[@]}" >/dev/null
bridge=$(sed -n 's/^BRIDGE=//p' "$work/bed/bed.env")
net=$(sed -n 's/^SUBNET=//p' "$work/bed/bed.env" | cut -d/ -f1 | sed 's/\.0$//')
# The installing machine's side: what it sends into the bed leaves through the bridge device.
[ "$rate" = none ] || tc qdisc replace dev "$bridge" root tbf rate "$rate" burst 64kb latency 200ms
echo "bed of $max hosts up in $(($(date +%s) - t0)) s; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

answers() { # n
	local n=$1 nodes="" i
	for i in $(seq 2 "$n"); do nodes="$nodes${nodes:+, }$net.$i"; done
	printf 'apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: bench\nspec:\n  hosts:\n    - ips: [%s.1]\n      roles: [master]\n' "$net"
	[ -z "$nodes" ] || printf '    - ips: [%s]\n      roles: [node]\n' "$nodes"
	printf '  ssh:\n    user: root\n    pk: %s\n' "$work/bed/client_key"
}

# sample PID: prints "peak_rss_kib peak_fds cpu_ticks" once PID has exited (cpu_ticks: its user and
# system time at the last sample, up to 0.2 s before its end). PID may exit (and be reaped by
# this shell) between kill -0 and the reads below: then ls fails, and under pipefail and set -e
# (inherited by the process substitution) that used to end this subshell without a line, so
# the main shell's read failed and the whole benchmark exited 1 without a word.
sample() {
	local pid=$1 rss=0 fds=0 cpu=0 r f st
	while kill -0 "$pid" 2>/dev/null; do
		r=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
		f=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l) || f=0
		[ -n "$r" ] && [ "$r" -gt "$rss" ] && rss=$r
		[ "$f" -gt "$fds" ] && fds=$f
		# fields 14 and 15 of stat, utime and stime (after the name in parentheses)
		st=$(cat "/proc/$pid/stat" 2>/dev/null || true)
		if [ -n "$st" ]; then st=${st##*) }; set -- $st; cpu=$((${12} + ${13})); fi
		sleep 0.2
	done
	echo "$rss $fds $cpu"
}

# fail WHAT LOG: the run stops; the log, the installer's own logs (state directory) and the
# bed's description are copied to $keep before the work directory goes.
fail() {
	local what=$1 log=$2 dest
	dest=$keep/$(date -u +%Y%m%dT%H%M%SZ)-$$
	mkdir -p "$dest"
	cp "$log" "$dest/" 2>/dev/null || true
	[ ! -d "$work/state" ] || cp -r "$work/state" "$dest/state" || true
	cp "$work/cluster.yaml" "$dest/" 2>/dev/null || true
	grep -v '^PASSWORD=' "$work/bed/bed.env" >"$dest/bed.env" 2>/dev/null || true
	echo "load $(cut -d' ' -f1-3 /proc/loadavg)" >"$dest/loadavg"
	echo "$what:" >&2
	tail -30 "$log" >&2
	echo "logs kept in $dest" >&2
	exit 1
}

# busy CPU time of the whole machine so far, in clock ticks (user nice system irq softirq steal)
cpu_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
tick=$(getconf CLK_TCK)
declare -A secs
for p in $payloads; do
	ctx=$work/ctx-$p
	# The test image itself (its Kubefile sets the ENV its phase scripts need: a Kubefile of our
	# own here fell behind it once, and every install stopped at init-master0), plus the payload.
	mkdir -p "$ctx"
	cp -r testdata/e2e/image/. "$ctx/"
	mkdir -p "$ctx/data"
	head -c "${p}M" /dev/urandom >"$ctx/data/random.bin"
	printf 'COPY data /data\n' >>"$ctx/Kubefile"
	./bin/gen -f "$ctx/Kubefile" -o "$work/installer-$p.run" >/dev/null
	size=$(stat -c %s "$work/installer-$p.run")
	echo
	echo "payload $p MiB: installer $((size / 1048576)) MiB, link $rate, --parallel ${BENCH_PARALLEL:-default}"
	printf '%-6s %-8s %-9s %-8s %-9s %-15s %-14s %-13s %s\n' hosts seconds "sent" "RSS MiB" "peak fds" "load (1/5/15)" "CPU s (/cores)" "installer CPU" "phases (s)"
	for n in $hosts; do
		answers "$n" >"$work/cluster.yaml"
		log=$work/install-$p-$n.log
		tx0=$(cat "/sys/class/net/$bridge/statistics/tx_bytes"); cpu0=$(cpu_busy)
		start=$(date +%s.%N)
		"$work/installer-$p.run" install --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" "${parallel[@]}" >"$log" 2>&1 &
		pid=$!
		read -r rss fds icpu < <(sample "$pid")
		wait "$pid" || fail "install on $n hosts failed" "$log"
		end=$(date +%s.%N)
		tx=$(($(cat "/sys/class/net/$bridge/statistics/tx_bytes") - tx0)); cpu=$(($(cpu_busy) - cpu0))
		secs[$p-$n]=$(echo "$end - $start" | bc)
		phases=$(sed -n 's/^\[cluster\] \(.*\) finished in \([0-9.hms]*\).*/\1=\2/p' "$log" | tr ' ' '_' | paste -sd' ')
		# The load average as the install ends: wall times at a high load say little.
		printf '%-6s %-8.1f %-9s %-8s %-9s %-15s %-14s %-13s %s\n' "$n" "${secs[$p-$n]}" "$(echo "scale=3; $tx / $size" | bc)x" "$((rss / 1024))" "$fds" \
			"$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" "$(echo "scale=1; $cpu / $tick" | bc) ($(echo "scale=1; $cpu / $tick / $(nproc)" | bc))" \
			"$(echo "scale=2; $icpu / $tick" | bc)" "$phases"
		# Back to clean hosts for the next run (its time is not counted).
		"$work/installer-$p.run" reset --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" >"$log.reset" 2>&1 ||
			fail "reset after $n hosts failed" "$log.reset"
		rm -rf "$work/state"
	done
	if [ -n "${secs[$p-1]:-}" ] && [ -n "${secs[$p-40]:-}" ]; then
		printf 'ratio 40/1 hosts (payload %s MiB): %.2fx (goal <= 3x)\n' "$p" "$(echo "${secs[$p-40]} / ${secs[$p-1]}" | bc -l)"
	fi
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
