#!/bin/sh
set -eu
. scripts/lib.sh
record "upgrade-master from=$SEALPACK_FROM_VERSION to=$SEALPACK_TO_VERSION"
. scripts/upgrade-common.sh
