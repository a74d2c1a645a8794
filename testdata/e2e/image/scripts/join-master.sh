#!/bin/sh
set -eu
. scripts/lib.sh
record "join-master token=$(cat "$SEALPACK_SHARE/join-token")"
