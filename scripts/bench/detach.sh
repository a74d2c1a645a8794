#!/usr/bin/env bash
# Detached step scripts (install/detach.go): what running a short script
# detached (pid, log and exit status on the host, so that a retry never
# starts it twice) costs over running it attached to its SSH session, on one
# host of the namespaced test bed. Each iteration runs both, one after the
# other, so the ratio holds on a shared machine. Needs root.
# Usage: scripts/bench/detach.sh [ITERATIONS] (default 50)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-50}
echo "detached step scripts: $n iterations; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
go test -count=1 -run '^$' -bench '^BenchmarkDetachedScript$' -benchtime "${n}x" ./install/ |
	awk '/^BenchmarkDetachedScript/ {
		for (i = 5; i < NF; i += 2) v[$(i+1)] = $i
		printf "attached %.1f ms, detached %.1f ms a script: %.1f ms more, ratio %.2f\n", v["attached-ms/op"], v["detached-ms/op"], v["overhead-ms/op"], v["ratio"]
		found = 1
	}
	END { if (!found) { print "the benchmark printed no result" > "/dev/stderr"; exit 1 } }'
