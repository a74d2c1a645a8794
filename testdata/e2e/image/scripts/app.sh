#!/bin/sh
set -eu
. scripts/lib.sh
record "app on $(hostname)"
