#!/bin/sh
set -eu
. scripts/lib.sh
record "init-master0"
echo "token-$(hostname)" > "$SEALPACK_SHARE/join-token"
