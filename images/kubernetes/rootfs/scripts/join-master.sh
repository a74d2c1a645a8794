#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# join-master.sh (every other master, one at a time): kubeadm join --control-plane
JOIN_ROLE=master
. scripts/join.sh
