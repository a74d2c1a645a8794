#!/bin/sh
# Renews the join data before hosts join (as a kubeadm image renews its
# token): counts the renewals so tests can see it ran on each run.
set -eu
n=$(cat "$SEALPACK_SHARE/refreshed" 2>/dev/null || echo 0)
echo $((n + 1)) > "$SEALPACK_SHARE/refreshed"
