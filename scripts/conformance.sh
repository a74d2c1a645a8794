#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance program against the embedded
# registry: the pull workflow over content preloaded in a bundle (read-only),
# then the whole suite in writable mode (--writable with htpasswd auth).
# Needs the Go module proxy to build the program. Usage: scripts/conformance.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Pinned: the program's checks change between versions.
VERSION=${OCI_CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" go install "github.com/opencontainers/distribution-spec/conformance@$VERSION"
status=0
OCI_CONFORMANCE_BIN="$bin/conformance" go test -count=1 -run '^TestConformance$' -v ./registry/ >"$bin/log" 2>&1 || status=$?
grep -E '^(=== RUN|--- |\s+conformance_test.go:[0-9]+: conformance: |ok|FAIL|PASS)' "$bin/log" || true
[ "$status" = 0 ] || cat "$bin/log"
exit "$status"
