#!/bin/sh
# Runs on every host: record that the host was initialised.
set -eu
mkdir -p /etc/demo
echo "initialised $(hostname) as ${SEALPACK_ROLE:-unknown}" > /etc/demo/initialised
