#!/usr/bin/env bash
# Embedded registry benchmarks (issue 4): pull every image of a ~1 GiB bundle
# from the registry (in place) and from distribution's filesystem driver over
# an extracted copy; time to first byte on 1 GiB and 4 GiB bundles. Prints
# Markdown for docs/BENCHMARKS.md; nothing here passes or fails.
#
# Usage: scripts/bench/registry.sh            (or: make bench)
#
# Environment:
#   BENCH_DIR=DIR        work here instead of a new temp dir (kept afterwards)
#   BENCH_RUNS=N         timed pulls per server, alternating (default 5)
#   BENCH_SIZE_MIB=N     throughput bundle size (default 1024)
#   BENCH_TTFB_GIB=LIST  bundle sizes for time to first byte (default 1,4)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -n ${BENCH_DIR:-} ]]; then
	DIR=$BENCH_DIR
else
	DIR=$(mktemp -d)
	trap 'rm -rf "$DIR"' EXIT
fi
cd "$ROOT"
echo "## Registry"
echo
echo "Made by \`scripts/bench/registry.sh\` ($(git describe --always --dirty 2>/dev/null || echo dev), $(date -u +%Y-%m-%d))."
echo
go run ./scripts/bench/registry -dir "$DIR" -runs "${BENCH_RUNS:-5}" -size "${BENCH_SIZE_MIB:-1024}" -ttfb "${BENCH_TTFB_GIB:-1,4}"
