#!/usr/bin/env bash
# Image pulls at scale (issue 15): what the master's registry serves when every node starts the
# bundle's images at once, as a DaemonSet rollout does, with and without the preload.
#
# One master and BENCH_NODES nodes (namespaced hosts, every link and this machine's bridge at
# BENCH_RATE with tc), each running a containerd of its own (Debian's, its content store in the
# host's private /var/lib). The bundle is the test cluster image (testdata/e2e/image) with
# BENCH_IMAGES random images of BENCH_IMAGE_SIZE bytes (3 layers each) from a loopback registry.
# Two installs, reset in between:
#   pull      the nodes' containerd holds nothing: every node fetches every image from the
#             master's registry (`ctr content fetch`), all nodes at once
#   preload   init-host.sh imports the layout the fan-out brought ($SEALPACK_IMAGES, `ctr images
#             import`), then the same fetch: containerd asks the registry for the manifests only
# For each it prints the bytes the master's registry served to other hosts (its "blob served" log
# lines), the blobs, the rollout's wall time, and what this machine sent during the install (the
# bridge's counter). Needs root, containerd and ctr.
#
# Usage: scripts/bench/pulls.sh
#   BENCH_NODES=40  BENCH_IMAGES=3  BENCH_IMAGE_SIZE=10485760  BENCH_RATE=200mbit ("none": unlimited)
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=${BENCH_NODES:-40}
images=${BENCH_IMAGES:-3}
size=${BENCH_IMAGE_SIZE:-$((10 << 20))}
rate=${BENCH_RATE:-200mbit}
for c in containerd ctr tc; do command -v $c >/dev/null || { echo "pulls.sh: $c is missing (apt-get install containerd iproute2)" >&2; exit 1; }; done
work=$(mktemp -d /var/tmp/sealpack-bench-pulls.XXXXXX)
bed=benchpull$$
reg=
hosts=$((nodes + 1))
cleanup() {
	[ -z "$reg" ] || kill "$reg" 2>/dev/null || true
	pkill -f "containerd --config /etc/bench-containerd.toml" 2>/dev/null || true
	scripts/testbed/testbed.sh down "$bed" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "pulls.sh: line $LINENO: exit status $?" >&2' ERR

make -s gen >/dev/null
go build -o "$work/benchreg" ./generator/internal/testreg/benchreg
ctx=$work/ctx
mkdir -p "$ctx" "$work/reg"
cp -r testdata/e2e/image/. "$ctx/"
"$work/benchreg" -dir "$work/reg" -images "$images" -size "$size" -layers 3 -list "$ctx/imageList" &
reg=$!
while [ ! -s "$ctx/imageList" ]; do kill -0 "$reg"; sleep 0.2; done
printf 'COPY imageList /manifests/imageList\n' >>"$ctx/Kubefile"
# The bench's part of init-host.sh: where the registry is, and with BENCH_PRELOAD=1 (the answers'
# env) the layout imported into this host's containerd.
cat >>"$ctx/scripts/init-host.sh" <<'EOF'
echo "$SEALPACK_REGISTRY $SEALPACK_REGISTRY_CA" > /etc/bench-registry
if [ "${BENCH_PRELOAD:-}" = 1 ] && [ -n "${SEALPACK_IMAGES:-}" ]; then
  tar -C "$SEALPACK_IMAGES" -cf - . | ctr -a /var/lib/bench-containerd/run/containerd.sock -n bench images import --no-unpack - >/dev/null
  record "bench preload $(ctr -a /var/lib/bench-containerd/run/containerd.sock -n bench images ls -q | wc -l) images"
fi
EOF
./bin/gen -f "$ctx/Kubefile" -o "$work/installer.run" >"$work/gen.log" 2>&1 || { cat "$work/gen.log"; exit 1; }
kill "$reg"; reg=
isize=$(stat -c %s "$work/installer.run")

bw=()
if [ "$rate" != none ]; then for i in $(seq 1 "$hosts"); do bw+=(--bandwidth "$i=$rate"); done; fi
scripts/testbed/testbed.sh up "$bed" "$hosts" --dir "$work/bed" "${bw[@]}" >/dev/null
bridge=$(sed -n 's/^BRIDGE=//p' "$work/bed/bed.env")
net=$(sed -n 's/^SUBNET=//p' "$work/bed/bed.env" | cut -d/ -f1 | sed 's/\.0$//')
[ "$rate" = none ] || tc qdisc replace dev "$bridge" root tbf rate "$rate" burst 64kb latency 200ms
on() { local h=$1; shift; scripts/testbed/testbed.sh exec "$bed" "$h" "$@"; }

# containerd on every node, its state under the host's own /var/lib (/run is the machine's)
containerd_up() {
	local i
	for i in $(seq 2 "$hosts"); do
		on "$i" sh -c 'mkdir -p /var/lib/bench-containerd/run && cat > /etc/bench-containerd.toml <<EOF
version = 2
root = "/var/lib/bench-containerd/root"
state = "/var/lib/bench-containerd/run"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/var/lib/bench-containerd/run/containerd.sock"
EOF
setsid containerd --config /etc/bench-containerd.toml >/var/lib/bench-containerd/log 2>&1 </dev/null &' &
	done
	wait
	for i in $(seq 2 "$hosts"); do
		local t=0
		until on "$i" ctr -a /var/lib/bench-containerd/run/containerd.sock version >/dev/null 2>&1; do
			t=$((t + 1)); [ "$t" -lt 100 ] || { echo "containerd does not answer on h$i:"; on "$i" tail -5 /var/lib/bench-containerd/log; exit 1; }
			sleep 0.2
		done
	done
}
containerd_down() {
	pkill -f "containerd --config /etc/bench-containerd.toml" 2>/dev/null || true
	sleep 1
	local i
	for i in $(seq 2 "$hosts"); do on "$i" rm -rf /var/lib/bench-containerd & done
	wait
}

answers() { # preload
	local list="" i
	for i in $(seq 2 "$hosts"); do list="$list${list:+, }$net.$i"; done
	printf 'apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: bench\nspec:\n  hosts:\n    - ips: [%s.1]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n' "$net" "$list"
	printf '  env: [BENCH_PRELOAD=%s]\n  ssh:\n    user: root\n    pk: %s\n' "$1" "$work/bed/client_key"
}

# rollout: every node fetches every image from the master's registry at once; prints seconds
rollout() {
	local refs i start pids=() p
	refs=$(sed 's|^[^/]*/||' "$ctx/imageList" | tr '\n' ' ')
	start=$(date +%s.%N)
	for i in $(seq 2 "$hosts"); do
		on "$i" bash -c 'read -r reg ca < /etc/bench-registry
			for r in '"$refs"'; do
			  ctr -a /var/lib/bench-containerd/run/containerd.sock -n bench content fetch --tlscacert "$ca" "$reg/$r" >/tmp/bench-fetch.log 2>&1 ||
			    { echo "h'"$i"': fetch $reg/$r failed:" >&2; tail -5 /tmp/bench-fetch.log >&2; exit 1; }
			done' &
		pids+=($!)
	done
	# each by its pid: wait -n loses the status of jobs that ended before it was called
	local failed=0
	for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
	[ "$failed" = 0 ] || { echo "pulls.sh: the fetch failed on $failed nodes" >&2; exit 1; }
	echo "$(date +%s.%N) - $start" | bc
}

# served: "bytes blobs" the master's registry served to other hosts (its log's "blob served" lines)
served() {
	on 1 cat /var/lib/sealpack/registry/registry.log | awk -v me="$net.1" '/msg="blob served"/ {
		b = 0; c = ""
		for (i = 1; i <= NF; i++) { if ($i ~ /^bytes=/) b = substr($i, 7); if ($i ~ /^client=/) { c = substr($i, 8); sub(/:[0-9]+$/, "", c) } }
		if (c != me && c != "127.0.0.1") { s += b; k++ }
	} END { printf "%d %d\n", s, k }'
}

echo "pulls: 1 master + $nodes nodes, $images images of $((size >> 20)) MiB, link $rate, installer $((isize >> 20)) MiB; machine: $(nproc) cores"
printf '%-8s %-12s %-14s %-7s %-12s %-14s %s\n' mode install "sent" blobs "served MiB" "per node MiB" "rollout s"
for mode in pull preload; do
	containerd_up
	p=0; [ "$mode" = preload ] && p=1
	answers $p >"$work/cluster.yaml"
	tx0=$(cat "/sys/class/net/$bridge/statistics/tx_bytes")
	t0=$(date +%s.%N)
	"$work/installer.run" install --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" >"$work/install-$mode.log" 2>&1 ||
		{ echo "install ($mode) failed:"; tail -30 "$work/install-$mode.log"; exit 1; }
	took=$(echo "$(date +%s.%N) - $t0" | bc)
	tx=$(($(cat "/sys/class/net/$bridge/statistics/tx_bytes") - tx0))
	if [ "$mode" = preload ]; then
		n=$(on 2 cat /etc/sealpack-test/log | grep -c "bench preload $images images" || true)
		[ "$n" = 1 ] || { echo "pulls.sh: h2 did not import the bundle's $images images:"; on 2 cat /etc/sealpack-test/log; exit 1; }
	fi
	read -r b0 k0 < <(served)
	secs=$(rollout)
	read -r b1 k1 < <(served)
	b=$((b1 - b0)) k=$((k1 - k0))
	printf '%-8s %-12s %-14s %-7s %-12s %-14s %s\n' "$mode" "$(printf '%.1f s' "$took")" "$(echo "scale=3; $tx / $isize" | bc)x installer" "$k" \
		"$(echo "scale=1; $b / 1048576" | bc)" "$(echo "scale=2; $b / $nodes / 1048576" | bc)" "$(printf '%.1f' "$secs")"
	"$work/installer.run" reset --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" >"$work/reset-$mode.log" 2>&1 ||
		{ echo "reset ($mode) failed:"; tail -30 "$work/reset-$mode.log"; exit 1; }
	rm -rf "$work/state"
	containerd_down
done
